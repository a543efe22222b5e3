import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { slotOfChannel } from '../../src/backend/redis/slots.js';
import { buildConfig, ConfigError, loadConfig } from '../../src/config/load.js';
import { HistoryPolicy } from '../../src/delivery/history-policy.js';
import { messageHead, type ChannelMessage } from '../../src/delivery/message.js';
import { expectExactly, until } from '../support/assertions.js';
import { redisClusterBusHarness, useNodesOnRedisCluster } from '../support/cluster.js';
import {
  API_KEY,
  connectClient,
  postJson,
  startNode,
  token,
  type TestClient,
  type TestNode,
} from '../support/nodes.js';

/**
 * pushcast on a real Redis Cluster (three masters on loopback, started once for the file): every
 * Redis path is slot-aware, a channel lives on one shard (its keys and its shard channel share
 * the `{channel}` slot), pushes cross nodes and shards, multi-channel pushes span shards, and the
 * cluster-wide views add up every node.
 */
describe('pushcast on a Redis Cluster (3 masters, 2 nodes)', () => {
  const cluster = useNodesOnRedisCluster({
    masters: 3,
    nodes: 2,
    config: { history: { size: 100, ttlS: 60, channels: [{ pattern: 'off:*', size: 0 }] } },
  });
  const run = Math.random().toString(36).slice(2, 7);

  /** One channel name per master (by slot), starting with `prefix`. */
  const onEachShard = async (prefix: string): Promise<string[]> => {
    const masterOf = await cluster.redis.slotMasters();
    const masters = await cluster.redis.masters();
    const found = new Map<number, string>();
    for (let i = 0; found.size < masters.length && i < 10_000; i++) {
      const channel = `${prefix}${run}-${i}`;
      const master = masterOf(slotOfChannel(channel));
      if (!found.has(master)) found.set(master, channel);
    }
    expect(found.size).toBe(masters.length);
    return [...found.values()];
  };
  const client = async (node: TestNode, channels: string[]): Promise<TestClient> => {
    const c = await connectClient(node.url, { token: await token({ sub: 'u', channels }) });
    for (const channel of channels) expect(await c.join(channel)).toMatchObject({ ok: true });
    return c;
  };
  const readyz = async (node: TestNode) => (await fetch(`${node.url}/readyz`)).status;
  const push = async (node: TestNode, channel: string | string[], data: unknown) => {
    const res = await postJson(`${node.url}/api/push`, { channel, event: 'e', data });
    expect(res.status).toBe(200);
    return res.body.id as string;
  };

  it('keeps a channel on one shard: its keys and its shard channel on the master of its slot', async () => {
    const [a, b] = cluster.nodes;
    const channels = await onEachShard('slot:');
    const c = await client(a!, channels);
    try {
      for (const channel of channels) await push(b!, channel, 1);
      await c.waitFor(channels.length);
      const masterOf = await cluster.redis.slotMasters();
      for (const channel of channels) {
        const master = masterOf(slotOfChannel(channel));
        const shardChannels = (await cluster.redis.command(
          master,
          'PUBSUB',
          'SHARDCHANNELS',
          `socket.io#/#{${channel}}#`,
        )) as string[];
        expect(shardChannels).toEqual([`socket.io#/#{${channel}}#`]);
        expect(await cluster.redis.command(master, 'EXISTS', `pc:{${channel}}:m`)).toBe(1);
        expect(await cluster.redis.command(master, 'EXISTS', `pc:{${channel}}:s`)).toBe(1);
        // The set of recent push ids that makes a retry safe lives in the same slot.
        expect(await cluster.redis.command(master, 'ZCARD', `pc:{${channel}}:i`)).toBe(1);
      }
    } finally {
      c.close();
    }
  });

  it('delivers a push made on node B to a socket on node A, on every shard', async () => {
    const [a, b] = cluster.nodes;
    const channels = await onEachShard('cross:');
    const c = await client(a!, channels);
    try {
      const ids = [];
      for (const channel of channels) ids.push(await push(b!, channel, channel));
      const got = await c.waitFor(channels.length);
      expect(got.map((m) => m.id)).toEqual(ids);
      expect(got.map((m) => m.channel)).toEqual(channels);
      for (const m of got) expect(typeof m.offset).toBe('string');
    } finally {
      c.close();
    }
  });

  it('keeps every channel in offset order on both nodes with concurrent publishers on both', async () => {
    const channels = await onEachShard('order:');
    const clients = await Promise.all(cluster.nodes.map((n) => client(n, channels)));
    try {
      const perPublisher = 60;
      await Promise.all(
        cluster.nodes.map(async (node, p) => {
          for (let i = 0; i < perPublisher; i++)
            await push(node, channels[i % channels.length]!, { p, i });
        }),
      );
      const total = perPublisher * cluster.nodes.length;
      const sequences = await Promise.all(clients.map((c) => c.waitFor(total)));
      for (const channel of channels) {
        const views = sequences.map((got) => got.filter((m) => m.channel === channel));
        for (const view of views) {
          const ns = view.map((m) => Number(m.offset!.split(':')[1]));
          // Consecutive offsets from the first: none missing, none twice, in order.
          expect(ns).toEqual(ns.map((_, k) => ns[0]! + k));
          // Each publisher's own pushes in the order it made them.
          for (let p = 0; p < cluster.nodes.length; p++) {
            const own = view.filter((m) => (m.data as { p: number }).p === p);
            const is = own.map((m) => (m.data as { i: number }).i);
            expect(is).toEqual([...is].sort((x, y) => x - y));
          }
        }
        // The same order on both nodes.
        expect(views[1]!.map((m) => m.id)).toEqual(views[0]!.map((m) => m.id));
      }
    } finally {
      for (const c of clients) c.close();
    }
  });

  it('delivers a multi-channel push across shards once on each channel, with one id', async () => {
    const [a, b] = cluster.nodes;
    const channels = await onEachShard('multi:');
    const off = `off:${run}`;
    const c = await client(a!, [...channels, off]);
    try {
      const res = await postJson(`${b!.url}/api/push`, {
        channel: [...channels, off, channels[0]],
        event: 'e',
        data: 'once',
      });
      expect(res.status).toBe(200);
      expect(res.body.channel).toEqual([...channels, off]);
      const got = await c.waitFor(channels.length + 1);
      expect(got.map((m) => m.channel).sort()).toEqual([...channels, off].sort());
      expect(new Set(got.map((m) => m.id))).toEqual(new Set([res.body.id]));
      expect(got.find((m) => m.channel === off)!.offset).toBeUndefined();
      // Nothing more on any channel: a sentinel on each, after which nothing else came.
      for (const [k, channel] of [...channels, off].entries())
        await expectExactly(b!, c, channel, channels.length + 1 + k);
    } finally {
      c.close();
    }
  });

  it('a multi-channel push that failed on one shard completes on a retry with the same id, nothing twice', async () => {
    const channels = await onEachShard('retry:');
    const policy = new HistoryPolicy({ size: 100, ttlS: 60, channels: [] });
    const h = await redisClusterBusHarness(cluster.redis.seeds, policy, {
      redis: { commandTimeoutMs: 400 },
    });
    try {
      for (const channel of channels) await h.listen(channel);
      const id = `01RETRY${run.toUpperCase()}0000000000000`.slice(0, 26);
      const ts = Date.now();
      const messages = channels.map((channel) => ({
        channel,
        id,
        ts,
        event: 'e',
        data: 'r',
        head: messageHead(channel, 'e', '"r"', id, ts),
      }));
      // The last channel's master stops taking writes for a while: its script times out.
      const masterOf = await cluster.redis.slotMasters();
      const stalled = masterOf(slotOfChannel(channels.at(-1)!));
      await cluster.redis.command(stalled, 'CLIENT', 'PAUSE', 1200, 'WRITE');
      await expect(h.bus.publish(messages)).rejects.toMatchObject({ code: 'unavailable' });
      // The other shards took it: delivered there, once.
      await until(() => h.received.length >= channels.length - 1, 5000, 'the other shards');
      expect(h.received.map((m) => m.channel).sort()).toEqual(channels.slice(0, -1).sort());
      await until(
        () => h.bus.ready() && Date.now() - ts > 1300,
        5000,
        'the stalled master to take writes again',
      );
      // The retry: the shards that hold the id refuse it, the one that missed it takes it.
      const offsets = await h.bus.publish(messages);
      expect(offsets.slice(0, -1)).toEqual(channels.slice(0, -1).map(() => undefined));
      expect(offsets.at(-1)).toMatch(/:1$/);
      await until(() => h.received.length >= channels.length, 5000, 'the missing channel');
      for (const channel of channels) {
        const page = await h.bus.history(channel, { limit: 10 });
        expect(page.messages.map((m) => m.id)).toEqual([id]);
      }
      // And nothing twice anywhere, even later.
      await h.bus.publish(messages);
      for (const channel of channels) await h.bus.settle(channel);
      expect(h.received.map((m: ChannelMessage) => m.channel).sort()).toEqual([...channels].sort());
    } finally {
      await h.close();
    }
  });

  it('a multi-channel push answered 503 on one shard is completed by its retry (same Idempotency-Key): one id, nothing twice', async () => {
    const [a] = cluster.nodes;
    const masterOf = await cluster.redis.slotMasters();
    // The idempotency entry lives on the slot of the API key's hash tag: keep that master taking
    // writes, so the request itself is not what stalls.
    const idemMaster = masterOf(slotOfChannel('idem:test'));
    const channels = (await onEachShard('httpretry:')).filter(
      (c) => masterOf(slotOfChannel(c)) !== idemMaster,
    );
    expect(channels.length).toBeGreaterThanOrEqual(2);
    const c = await client(a!, channels);
    try {
      const body = { channel: channels, event: 'e', data: 'once' };
      const headers = { 'idempotency-key': `http-retry-${run}` };
      const stalled = masterOf(slotOfChannel(channels.at(-1)!));
      const pausedAt = Date.now();
      await cluster.redis.command(stalled, 'CLIENT', 'PAUSE', 1500, 'WRITE');
      const first = await postJson(`${a!.url}/api/push`, body, headers);
      expect({ status: first.status, code: first.body.code }).toEqual({
        status: 503,
        code: 'unavailable',
      });
      // The other shards took it meanwhile.
      await until(() => c.messages.length >= channels.length - 1, 5000, 'the other shards');
      // The pause is part of the scenario: the retry comes once the shard takes writes again.
      await until(() => Date.now() - pausedAt > 1600, 3000, 'the pause to end');
      const retry = await postJson(`${a!.url}/api/push`, body, headers);
      expect(retry.status).toBe(200);
      await expectExactly(a!, c, channels[0]!, channels.length);
      const pushed = c.messages.slice(0, channels.length);
      expect(new Set(pushed.map((m) => m.id))).toEqual(new Set([retry.body.id as string]));
      expect(pushed.map((m) => m.channel).sort()).toEqual([...channels].sort());
    } finally {
      c.close();
    }
  });

  it('recovers with since on another node: exactly what was missed, then live', async () => {
    const [a, b] = cluster.nodes;
    const channels = await onEachShard('rec:');
    for (const channel of channels) {
      const first = await client(a!, [channel]);
      await push(b!, channel, 0);
      const [seen] = await first.waitFor(1);
      first.close();
      const missed = [];
      for (let i = 1; i <= 5; i++) missed.push(await push(a!, channel, i));
      const again = await connectClient(b!.url, {
        token: await token({ sub: 'u', channels: [channel] }),
      });
      try {
        expect(await again.join(channel, { since: seen!.offset })).toMatchObject({
          ok: true,
          recovered: true,
          missed: 5,
        });
        expect((await again.waitFor(5)).map((m) => m.id)).toEqual(missed);
        const live = await push(a!, channel, 'live');
        expect((await again.waitFor(6))[5]!.id).toBe(live);
      } finally {
        again.close();
      }
    }
  });

  it('Idempotency-Key: a retry on the other node replays the first answer; another body is refused', async () => {
    const [a, b] = cluster.nodes;
    const channels = await onEachShard('idem:');
    const body = { channel: channels, event: 'e', data: 1 };
    const headers = { 'idempotency-key': `k-${run}` };
    const first = await postJson(`${a!.url}/api/push`, body, headers);
    expect(first.status).toBe(200);
    const again = await postJson(`${b!.url}/api/push`, body, headers);
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    const other = await postJson(`${b!.url}/api/push`, { ...body, data: 2 }, headers);
    expect(other.status).toBe(422);
    expect(other.body.code).toBe('idempotency_mismatch');
  });

  it('adds up every node for subscriber counts, presence, the channel list and stats', async () => {
    const [a, b] = cluster.nodes;
    const channels = await onEachShard('view:');
    const ca = await connectClient(a!.url, { token: await token({ sub: 'ann', channels }) });
    const cb = await connectClient(b!.url, { token: await token({ sub: 'bob', channels }) });
    const cb2 = await connectClient(b!.url, { token: await token({ sub: 'bob', channels }) });
    try {
      for (const c of [ca, cb, cb2]) for (const ch of channels) await c.join(ch);
      const get = async (node: TestNode, path: string) => {
        const res = await fetch(`${node.url}${path}`, {
          headers: { authorization: `Bearer ${API_KEY}` },
        });
        expect(res.status).toBe(200);
        return (await res.json()) as Record<string, unknown>;
      };
      for (const node of [a!, b!]) {
        for (const channel of channels) {
          expect(await get(node, `/api/channels/${channel}`)).toEqual({ channel, subscribers: 3 });
          expect(await get(node, `/api/channels/${channel}/presence`)).toEqual({
            channel,
            users: [
              { userId: 'ann', connections: 1 },
              { userId: 'bob', connections: 2 },
            ],
            count: 2,
          });
        }
        const list = (await get(node, `/api/channels?prefix=view:${run}`)) as {
          channels: Array<{ channel: string; subscribers: number }>;
        };
        expect(list.channels).toEqual(
          [...channels].sort().map((channel) => ({ channel, subscribers: 3 })),
        );
        const stats = (await get(node, '/api/stats')) as {
          nodes: unknown[];
          totals: { nodes: number };
        };
        expect(stats.totals.nodes).toBe(2);
      }
    } finally {
      for (const c of [ca, cb, cb2]) c.close();
    }
  });

  it('fills from history what a node missed while its subscriber connection to one shard was away', async () => {
    const [publisher] = cluster.nodes;
    const [channel] = await onEachShard('away:');
    const master = (await cluster.redis.slotMasters())(slotOfChannel(channel!));
    const admin = new Redis({ host: '127.0.0.1', port: master });
    const subscriberIds = async (): Promise<string[]> =>
      ((await admin.client('LIST')) as string)
        .split('\n')
        .filter((line) => line.includes(' name=ioredis-cluster(ssubscriber):pushcast-sub '))
        .map((line) => /^id=(\d+)/.exec(line)![1]!);
    const before = await subscriberIds();
    const receiver = await startNode({
      redisClusterNodes: cluster.redis.seeds,
      limits: { pushesPerSecond: 1e6, pushBurst: 1e6 },
    });
    const c = await client(receiver, [channel!]);
    let closed = '';
    c.socket.on('disconnect', (reason) => (closed = reason));
    try {
      const [mine] = (await subscriberIds()).filter((id) => !before.includes(id));
      expect(mine).toBeDefined();
      const answered: number[] = [];
      const pushAll = async (from: number, count: number) => {
        for (let i = from; i < from + count; i++) {
          const r = await postJson(`${publisher!.url}/api/push`, { channel, event: 'e', data: i });
          expect(r.status).toBe(200);
          answered.push(i);
        }
      };
      await pushAll(0, 5);
      await c.waitFor(5);
      // The receiver's connection to that master goes, and cannot come back for a while.
      const connected = ((await admin.client('LIST')) as string).trim().split('\n').length;
      await admin.config('SET', 'maxclients', String(connected - 1));
      await admin.client('KILL', 'ID', mine!);
      const readyz = async () => (await fetch(`${receiver.url}/readyz`)).status;
      await until(async () => (await readyz()) === 503, 5000, 'the receiver to see it');
      await pushAll(5, 30);
      await admin.config('SET', 'maxclients', '10000');
      await until(async () => (await readyz()) === 200, 15_000, 'the receiver ready again');
      await pushAll(35, 10);
      await expectExactly(publisher!, c, channel!, answered.length);
      expect(c.messages.slice(0, -1).map((m) => m.data)).toEqual(answered);
      const ns = c.messages.map((m) => Number(m.offset!.split(':')[1]));
      expect(ns).toEqual(ns.map((_, k) => ns[0]! + k));
      expect(closed).toBe('');
    } finally {
      c.close();
      await admin.config('SET', 'maxclients', '10000').catch(() => undefined);
      admin.disconnect();
      await receiver.stop();
    }
  });

  it('moves a channel with its slot (migration): keys, history and subscriptions follow, nothing missed', async () => {
    const [a, b] = cluster.nodes;
    const [channel] = await onEachShard('move:');
    const slot = slotOfChannel(channel!);
    const c = await client(a!, [channel!]);
    try {
      const ids = [];
      for (let i = 0; i < 5; i++) ids.push(await push(b!, channel!, i));
      await c.waitFor(5);
      const source = (await cluster.redis.slotMasters())(slot);
      const target = (await cluster.redis.masters()).find((m) => m !== source)!;
      const idOf = async (port: number) =>
        String(await cluster.redis.command(port, 'CLUSTER', 'MYID'));
      const [sourceId, targetId] = [await idOf(source), await idOf(target)];
      await cluster.redis.command(target, 'CLUSTER', 'SETSLOT', slot, 'IMPORTING', sourceId);
      await cluster.redis.command(source, 'CLUSTER', 'SETSLOT', slot, 'MIGRATING', targetId);
      const keys = (await cluster.redis.command(
        source,
        'CLUSTER',
        'GETKEYSINSLOT',
        slot,
        1000,
      )) as string[];
      expect(keys.length).toBeGreaterThan(0);
      await cluster.redis.command(
        source,
        'MIGRATE',
        '127.0.0.1',
        target,
        '',
        0,
        5000,
        'KEYS',
        ...keys,
      );
      for (const port of await cluster.redis.masters())
        await cluster.redis.command(port, 'CLUSTER', 'SETSLOT', slot, 'NODE', targetId);
      expect((await cluster.redis.slotMasters())(slot)).toBe(target);
      // Pushes go on, on either node; the socket on node A gets every one, in order.
      await until(
        async () => (await Promise.all(cluster.nodes.map(readyz))).every((s) => s === 200),
        15_000,
        'both nodes ready',
      );
      for (let i = 5; i < 15; i++) ids.push(await push(i % 2 ? a! : b!, channel!, i));
      await expectExactly(b!, c, channel!, ids.length);
      expect(c.messages.slice(0, -1).map((m) => m.id)).toEqual(ids);
      const ns = c.messages.map((m) => Number(m.offset!.split(':')[1]));
      expect(ns).toEqual(ns.map((_, k) => ns[0]! + k));
      // The room's subscription is on the new master now.
      expect(
        await cluster.redis.command(target, 'PUBSUB', 'SHARDNUMSUB', `socket.io#/#{${channel}}#`),
      ).toEqual([`socket.io#/#{${channel}}#`, 1]);
    } finally {
      c.close();
    }
  });

  describe('the push rate limit', () => {
    // Two more nodes on the same Redis Cluster with a small limit of their own.
    const limited: TestNode[] = [];
    beforeAll(async () => {
      for (let i = 0; i < 2; i++)
        limited.push(
          await startNode({
            redisClusterNodes: cluster.redis.seeds,
            redis: { keyPrefix: `rl${run}` },
            limits: { pushesPerSecond: 0.5, pushBurst: 4 },
          }),
        );
    });
    afterAll(async () => {
      await Promise.allSettled(limited.map((n) => n.stop()));
    });

    it('holds for the whole cluster, not per node', async () => {
      const statuses: number[] = [];
      for (let i = 0; i < 8; i++) {
        const node = limited[i % 2]!;
        const res = await postJson(`${node.url}/api/push`, {
          channel: `rl:${run}`,
          event: 'e',
          data: i,
        });
        statuses.push(res.status);
      }
      expect(statuses.filter((s) => s === 200)).toHaveLength(4);
      expect(statuses.filter((s) => s === 429)).toHaveLength(4);
    });
  });
});

describe('settings for a Redis Cluster', () => {
  const base = {
    NODE_ENV: 'test',
    PUSHCAST_API_KEYS: API_KEY,
    PUSHCAST_JWT_SECRET: 'x'.repeat(32),
  };

  it('refuses REDIS_URL and REDIS_CLUSTER_NODES together, naming both', () => {
    const start = () =>
      loadConfig(
        { ...base, REDIS_URL: 'redis://r:6379', REDIS_CLUSTER_NODES: 'a:7000,b:7001' },
        '/nonexistent',
      );
    expect(start).toThrow(ConfigError);
    expect(start).toThrow(/REDIS_URL.*REDIS_CLUSTER_NODES|REDIS_CLUSTER_NODES.*REDIS_URL/);
  });

  it('refuses classic pub/sub on a Redis Cluster, naming both settings', () => {
    expect(() =>
      loadConfig(
        { ...base, REDIS_CLUSTER_NODES: 'a:7000', PUSHCAST_REDIS_MODE: 'classic' },
        '/nonexistent',
      ),
    ).toThrow(/PUSHCAST_REDIS_MODE.*REDIS_CLUSTER_NODES/);
  });

  it('reads seeds, credentials and TLS from the environment, never echoing the password', () => {
    const { config } = loadConfig(
      {
        ...base,
        REDIS_CLUSTER_NODES: 'redis-0.redis:6379, redis-1.redis:6379',
        REDIS_USERNAME: 'pushcast',
        REDIS_PASSWORD: 'hunter2-cluster-password',
        PUSHCAST_REDIS_TLS: 'true',
      },
      '/nonexistent',
    );
    expect(config.redisClusterNodes).toEqual(['redis-0.redis:6379', 'redis-1.redis:6379']);
    expect(config.redis).toMatchObject({
      mode: 'sharded',
      username: 'pushcast',
      password: 'hunter2-cluster-password',
      tls: true,
    });
    expect(() =>
      buildConfig({
        env: 'test',
        apiKeys: [{ key: API_KEY }],
        jwt: { secret: 'x'.repeat(32) },
        redisClusterNodes: ['no-port'],
      }),
    ).toThrow(/^invalid setting redisClusterNodes\.0: host:port entries$/);
  });
});
