import { Redis } from 'ioredis';
import { pino } from 'pino';
import { Server } from 'socket.io';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackend } from '../../src/backend/backend.js';
import { configSchema } from '../../src/config/schema.js';
import { HistoryPolicy } from '../../src/delivery/history-policy.js';
import { roomOf } from '../../src/delivery/names.js';
import { startRedis } from '../support/redis.js';
import { useNodesOnRedisCluster, useRedisCluster } from '../support/cluster.js';
import { until } from '../support/assertions.js';
import { connectClient, postJson, token, type TestClient } from '../support/nodes.js';

/**
 * What joins cost Redis. A join of a room new to a node subscribes the node to the room's shard
 * channel and proves it (the SSUBSCRIBE's answer), and takes the room's position after a round trip
 * on the subscriber connection (a PING). Socket.IO's sharded adapter sends its own SSUBSCRIBE when
 * the room is created: the join waits for that answer rather than sending a second SSUBSCRIBE, and
 * the round trips asked for in one turn of the event loop share one PING.
 */
/** A client allowed on `cost:*`, and `rooms` channels for it to join. */
async function joiner(
  url: string,
  rooms: number,
): Promise<{ channels: string[]; client: TestClient }> {
  const channels = Array.from({ length: rooms }, (_, i) => `cost:${i}`);
  const client = await connectClient(url, { token: await token({ channels: ['cost:*'] }) });
  return { channels, client };
}

/** Joins every channel at once (the joins leave in one tick); each is answered ok. */
async function joinAll(client: TestClient, channels: string[]): Promise<void> {
  const answers = await Promise.all(channels.map((channel) => client.join(channel)));
  expect(answers.every((a) => a.ok === true)).toBe(true);
}

/** Subscribed for real: one push to every channel reaches the client once per channel. */
async function expectDelivered(url: string, client: TestClient, channels: string[]): Promise<void> {
  const res = await postJson(`${url}/api/push`, { channel: channels, event: 'e', data: 'x' });
  expect(res.status).toBe(200);
  const got = await client.waitFor(channels.length);
  expect(new Set(got.map((m) => m.channel))).toEqual(new Set(channels));
}

describe('joins over one Redis: the commands they cost', () => {
  const cluster = useRedisCluster({ nodes: 1, config: { redis: { mode: 'sharded' } } });
  let admin: Redis;

  beforeAll(async () => {
    admin = new Redis(cluster.redis.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
    await admin.connect();
  });
  afterAll(() => admin.disconnect());

  /** Calls Redis has counted of each command so far. */
  async function calls(): Promise<Record<string, number>> {
    const info = await admin.info('commandstats');
    const counts: Record<string, number> = {};
    for (const m of info.matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)) counts[m[1]!] = Number(m[2]);
    return counts;
  }

  it('one SSUBSCRIBE per new room and one PING for the joins of one turn; every room delivers', async () => {
    const rooms = 40;
    const { channels, client } = await joiner(cluster.node.url, rooms);
    try {
      const before = await calls();
      // Emitted in one tick: they reach the node together and are handled in one turn.
      await joinAll(client, channels);
      // The positions' round trips run after the joins are answered (in the background).
      let after = await calls();
      const delta = (cmd: string): number => (after[cmd] ?? 0) - (before[cmd] ?? 0);
      await until(
        async () => {
          const earlier = await calls();
          await new Promise((r) => setTimeout(r, 150));
          after = await calls();
          return delta('ping') >= 1 && after.ping === earlier.ping;
        },
        5000,
        "the joins' round trips, done",
      );
      // Three each (the adapter's and two of the join's own) before the join waited for the
      // adapter's answer.
      expect(delta('ssubscribe')).toBe(rooms);
      // Forty (one each) before the round trips of a turn were shared; one per turn in which
      // position answers arrived now (one or two here; a slow machine may split them further).
      expect(delta('ping')).toBeLessThanOrEqual(10);

      await expectDelivered(cluster.node.url, client, channels);
    } finally {
      client.close();
    }
  });
});

describe('joins over a Redis Cluster: the commands they cost', () => {
  const cluster = useNodesOnRedisCluster({ masters: 3 });

  /** SSUBSCRIBE calls every master has counted so far, summed. */
  async function ssubscribes(): Promise<number> {
    let total = 0;
    for (const port of await cluster.redis.masters()) {
      const info = String(await cluster.redis.command(port, 'INFO', 'commandstats'));
      total += Number(/^cmdstat_ssubscribe:calls=(\d+)/m.exec(info)?.[1] ?? 0);
    }
    return total;
  }

  it("a new room's joins share its SSUBSCRIBE in flight: two per room (the adapter's and one), not three", async () => {
    const rooms = 30;
    const { channels, client } = await joiner(cluster.node.url, rooms);
    try {
      const before = await ssubscribes();
      await joinAll(client, channels);
      // The adapter's own when the room is created, and one for the room's hold and the join
      // together (each sent its own before).
      expect((await ssubscribes()) - before).toBe(2 * rooms);
      await expectDelivered(cluster.node.url, client, channels);
    } finally {
      client.close();
    }
  });
});

describe('a room emptied while its subscription was being proven (one Redis)', () => {
  it("its next life on the node waits for its own SSUBSCRIBE, not the first life's answer", async () => {
    await using redis = await startRedis();
    const io = new Server();
    const backend = await createBackend({
      config: configSchema.parse({
        env: 'test',
        logLevel: 'silent',
        redisUrl: redis.url,
        redis: { mode: 'sharded' },
      }),
      io,
      history: new HistoryPolicy({ size: 10, ttlS: 60, channels: [] }),
      log: pino({ level: 'silent' }),
    });
    const admin = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
    await admin.connect();
    const adapter = io.of('/').adapter;
    const room = roomOf('life:1');
    // Redis holds every client's commands for a while: the room's SSUBSCRIBE is answered late.
    const hold = (): Promise<unknown> => admin.call('CLIENT', 'PAUSE', '400', 'ALL');
    try {
      await hold();
      // Created (the adapter sends its SSUBSCRIBE), then emptied (it sends SUNSUBSCRIBE) before
      // the answer that the subscription waits for.
      void adapter.addAll('first', new Set([room]));
      const first = backend.ensureSubscribed(room);
      void adapter.delAll('first');
      await first;
      // Its next life: created again while Redis holds commands. Proven only by the new
      // SSUBSCRIBE's answer, once Redis lets it through; taken as proven at once before (the
      // first life's answer had marked the room confirmed after it was emptied).
      await hold();
      void adapter.addAll('second', new Set([room]));
      const started = performance.now();
      await backend.ensureSubscribed(room);
      expect(performance.now() - started).toBeGreaterThan(200);
    } finally {
      admin.disconnect();
      // The server was never attached to an HTTP server: nothing of its own to close.
      await backend.close();
    }
  });
});
