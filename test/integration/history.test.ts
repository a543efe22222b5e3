import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import {
  startRedis,
  startRedisCluster,
  type RedisClusterFixture,
  type RedisFixture,
} from '../support/redis.js';
import {
  API_KEY,
  connectClient,
  postJson,
  startNode,
  token,
  type TestNode,
} from '../support/nodes.js';
import type { ChannelMessage } from '../../src/delivery/message.js';
import { useRedisCluster } from '../support/cluster.js';
import { expectExactly } from '../support/assertions.js';

/**
 * One suite, two stores: history and recovery must behave the same in memory (single node) and
 * in Redis (several nodes). `nodes[0]` holds the subscribers, the last node publishes.
 */
function historySuite(
  name: string,
  setup: () => Promise<{ nodes: TestNode[]; stop(): Promise<void> }>,
) {
  describe(`history and recovery (${name})`, () => {
    let nodes: TestNode[];
    let stop: () => Promise<void>;
    const sub = (): TestNode => nodes[0]!;
    const pub = (): TestNode => nodes[nodes.length - 1]!;
    const push = async (channel: string, data: unknown) => {
      const res = await postJson(`${pub().url}/api/push`, { channel, event: 'e', data });
      expect(res.status).toBe(200);
      return res.body.id as string;
    };
    const client = async (channels: string[]) =>
      connectClient(sub().url, { token: await token({ sub: 'u', channels }) });

    beforeAll(async () => {
      const started = await setup();
      nodes = started.nodes;
      stop = () => started.stop();
    });
    afterAll(async () => stop?.());

    it('rejoin with since after missing 10 pushes gets exactly those 10, then live ones', async () => {
      const first = await client(['h:ten']);
      await first.join('h:ten');
      await push('h:ten', 0);
      const [seen] = await first.waitFor(1);
      first.close();
      const missedIds: string[] = [];
      for (let i = 1; i <= 10; i++) missedIds.push(await push('h:ten', i));
      const again = await client(['h:ten']);
      try {
        const ack = await again.join('h:ten', { since: seen!.offset });
        expect(ack).toMatchObject({ ok: true, channel: 'h:ten', recovered: true, missed: 10 });
        const got = await again.waitFor(10);
        expect(got.map((m) => m.id)).toEqual(missedIds);
        const liveId = await push('h:ten', 11);
        const all = await again.waitFor(11);
        expect(all.map((m) => m.data)).toEqual([...Array(11).keys()].map((i) => i + 1));
        expect(all[10]!.id).toBe(liveId);
        await expectExactly(pub(), again, 'h:ten', 11);
      } finally {
        again.close();
      }
    });

    it('join answers the current offset; rejoining with it misses nothing and repeats nothing', async () => {
      await push('h:pos', 'before');
      const c = await client(['h:pos']);
      const ack = await c.join('h:pos');
      expect(typeof ack.offset).toBe('string');
      c.close();
      await push('h:pos', 'gap');
      const c2 = await client(['h:pos']);
      try {
        expect(await c2.join('h:pos', { since: ack.offset })).toMatchObject({
          recovered: true,
          missed: 1,
        });
        expect((await c2.waitFor(1)).map((m) => m.data)).toEqual(['gap']);
      } finally {
        c2.close();
      }
    });

    it('a client that joined an empty channel and saw nothing resumes from the join position', async () => {
      const c = await client(['h:empty']);
      const ack = await c.join('h:empty');
      expect(typeof ack.offset).toBe('string');
      c.close();
      const ids = [await push('h:empty', 'a'), await push('h:empty', 'b')];
      const again = await client(['h:empty']);
      try {
        expect(await again.join('h:empty', { since: ack.offset })).toMatchObject({
          recovered: true,
          missed: 2,
        });
        expect((await again.waitFor(2)).map((m) => m.id)).toEqual(ids);
      } finally {
        again.close();
      }
    });

    it('since older than the history window answers recovered: false, then streams live', async () => {
      const small = 'h:small:x';
      const c = await client(['h:small:*']);
      await c.join(small);
      await push(small, 0);
      const [seen] = await c.waitFor(1);
      c.close();
      // History size is 5 for h:small:*. Redis trims streams approximately (MAXLEN ~: whole
      // 100-entry nodes at a time), so push well past that for history to really lose the start.
      for (let b = 0; b < 3; b++) {
        const pushes = [...Array(100).keys()].map((i) => ({
          channel: small,
          event: 'e',
          data: b * 100 + i,
        }));
        expect((await postJson(`${pub().url}/api/push/batch`, { pushes })).status).toBe(200);
      }
      const again = await client(['h:small:*']);
      try {
        const ack = await again.join(small, { since: seen!.offset });
        expect(ack).toMatchObject({ ok: true, recovered: false });
        expect(ack.missed).toBeUndefined();
        await push(small, 'live');
        const got = await again.waitFor(1);
        expect(got.map((m) => m.data)).toEqual(['live']);
      } finally {
        again.close();
      }
    });

    it('garbage since values answer recovered: false and never hang', async () => {
      const c = await client(['h:garbage']);
      try {
        for (const since of [
          '',
          'abc',
          '::',
          'x:-1',
          'zz:99999999999999999999',
          'a'.repeat(100),
          'ffffffffffff:1',
        ]) {
          await c.emit('leave', { channel: 'h:garbage' });
          const ack = await c.join('h:garbage', { since });
          expect(ack).toMatchObject({ ok: true, recovered: false });
        }
        await c.emit('leave', { channel: 'h:garbage' });
        expect(await c.join('h:garbage', { since: 'b'.repeat(101) })).toEqual({
          ok: false,
          error: 'invalid_request',
        });
        expect(await c.join('h:garbage', { since: 42 })).toEqual({
          ok: false,
          error: 'invalid_request',
        });
      } finally {
        c.close();
      }
    });

    it('history off for a channel pattern: no offset, since cannot recover', async () => {
      const c = await client(['nohist:*']);
      try {
        expect((await c.join('nohist:a')).offset).toBeUndefined();
        await push('nohist:a', 1);
        const [m] = await c.waitFor(1);
        expect(m!.offset).toBeUndefined();
        expect(Object.keys(m!).sort()).toEqual(['channel', 'data', 'event', 'id', 'ts']);
        const c2 = await client(['nohist:*']);
        expect(await c2.join('nohist:a', { since: 'abc:1' })).toMatchObject({
          ok: true,
          recovered: false,
        });
        c2.close();
      } finally {
        c.close();
      }
    });

    it('a rejoin while pushes keep arriving sees every message once, in offset order', async () => {
      const ch = 'h:busy';
      const c = await client([ch]);
      await c.join(ch);
      await push(ch, -1);
      const [seen] = await c.waitFor(1);
      c.close();
      const total = 60;
      // The rejoin starts once the publishers are under way (the 6th push taken), while they go on.
      let taken = 0;
      let underWay!: () => void;
      const started = new Promise<void>((resolve) => (underWay = resolve));
      const publishers = nodes.map(async (n, k) => {
        for (let i = k; i < total; i += nodes.length) {
          const res = await postJson(`${n.url}/api/push`, { channel: ch, event: 'e', data: i });
          expect(res.status).toBe(200);
          if (++taken === 6) underWay();
        }
      });
      await started;
      const again = await client([ch]);
      try {
        const ack = await again.join(ch, { since: seen!.offset });
        expect(ack).toMatchObject({ ok: true, recovered: true });
        await Promise.all(publishers);
        await again.waitFor(total);
        await expectExactly(pub(), again, ch, total);
        const got = again.messages.slice(0, total);
        const ns = got.map((m: ChannelMessage) => Number(m.offset!.split(':')[1]));
        const first = Number(seen!.offset!.split(':')[1]);
        expect(ns).toEqual([...Array(total).keys()].map((i) => first + 1 + i));
        expect(got.map((m) => m.data).sort((a, b) => (a as number) - (b as number))).toEqual([
          ...Array(total).keys(),
        ]);
      } finally {
        again.close();
      }
    });

    it('serves GET /api/channels/:channel/history oldest first, with since and limit', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push(await push('h:api', i));
      const get = (q: string) =>
        fetch(`${sub().url}/api/channels/h:api/history${q}`, {
          headers: { authorization: `Bearer ${API_KEY}` },
        });
      const all = (await (await get('')).json()) as {
        messages: ChannelMessage[];
        offset: string;
        complete: boolean;
      };
      expect(all.messages.map((m) => m.id)).toEqual(ids);
      expect(all.offset).toBe(all.messages[4]!.offset);
      const two = (await (await get('?limit=2')).json()) as { messages: ChannelMessage[] };
      expect(two.messages.map((m) => m.id)).toEqual(ids.slice(3));
      const after = (await (
        await get(`?since=${encodeURIComponent(all.messages[1]!.offset!)}`)
      ).json()) as {
        messages: ChannelMessage[];
        complete: boolean;
      };
      expect(after.messages.map((m) => m.id)).toEqual(ids.slice(2));
      expect(after.complete).toBe(true);
      expect((await get('?since=nonsense')).status).toBe(422);
      expect((await get('?limit=0')).status).toBe(422);
      expect((await fetch(`${sub().url}/api/channels/h:api/history`)).status).toBe(401);
    });
  });
}

const historyConfig = {
  history: {
    size: 100,
    ttlS: 60,
    channels: [
      { pattern: 'h:small:*', size: 5 },
      { pattern: 'nohist:*', size: 0 },
    ],
  },
};

historySuite('memory', async () => {
  const node = await startNode(historyConfig);
  return { nodes: [node], stop: () => node.stop() };
});

let redis: RedisFixture | undefined;
historySuite('redis, 3 nodes', async () => {
  redis = await startRedis();
  const nodes: TestNode[] = [];
  for (let i = 0; i < 3; i++)
    nodes.push(await startNode({ ...historyConfig, redisUrl: redis.url }));
  return {
    nodes,
    stop: async () => {
      await Promise.allSettled(nodes.map((n) => n.stop()));
      await redis?.stop();
    },
  };
});

describe('history epochs (redis)', () => {
  const cluster = useRedisCluster();
  let fixture: RedisFixture;
  let node: TestNode;
  beforeAll(() => {
    ({ redis: fixture, node } = cluster);
  });

  it('an offset from a history that was lost and started again is not taken for one in the new one', async () => {
    const c = await connectClient(node.url, { token: await token({ sub: 'u', channels: ['ep'] }) });
    await c.join('ep');
    for (let i = 0; i < 3; i++)
      await postJson(`${node.url}/api/push`, { channel: 'ep', event: 'e', data: i });
    const got = await c.waitFor(3);
    c.close();
    const admin = new Redis(fixture.url);
    await admin.flushall(); // history lost
    admin.disconnect();
    for (let i = 0; i < 5; i++)
      await postJson(`${node.url}/api/push`, { channel: 'ep', event: 'e', data: i });
    const again = await connectClient(node.url, {
      token: await token({ sub: 'u', channels: ['ep'] }),
    });
    try {
      expect(await again.join('ep', { since: got[0]!.offset })).toMatchObject({
        ok: true,
        recovered: false,
      });
    } finally {
      again.close();
    }
  });
});

let classicRedis: RedisFixture | undefined;
historySuite('redis classic pub/sub, 2 nodes', async () => {
  classicRedis = await startRedis();
  const nodes: TestNode[] = [];
  for (let i = 0; i < 2; i++)
    nodes.push(
      await startNode({ ...historyConfig, redisUrl: classicRedis.url, redis: { mode: 'classic' } }),
    );
  return {
    nodes,
    stop: async () => {
      await Promise.allSettled(nodes.map((n) => n.stop()));
      await classicRedis?.stop();
    },
  };
});

let redisCluster: RedisClusterFixture | undefined;
historySuite('Redis Cluster (3 masters), 3 nodes', async () => {
  redisCluster = await startRedisCluster({ masters: 3 });
  const nodes: TestNode[] = [];
  for (let i = 0; i < 3; i++)
    nodes.push(await startNode({ ...historyConfig, redisClusterNodes: redisCluster.seeds }));
  return {
    nodes,
    stop: async () => {
      await Promise.allSettled(nodes.map((n) => n.stop()));
      await redisCluster?.stop();
    },
  };
});

describe('history size is the same contract in memory and in Redis', () => {
  let redis: RedisFixture;
  const nodes: TestNode[] = [];
  beforeAll(async () => {
    redis = await startRedis();
    nodes.push(
      await startNode({ history: { size: 3 } }),
      await startNode({ redisUrl: redis.url, history: { size: 3 } }),
    );
  });
  afterAll(async () => {
    await Promise.allSettled(nodes.map((n) => n.stop()));
    await redis?.stop();
  });

  for (const [i, name] of ['memory', 'redis'].entries()) {
    it(`${name}: keeps the last 3 messages; a since before them does not recover`, async () => {
      const node = nodes[i]!;
      const ids: string[] = [];
      for (let n = 0; n < 6; n++)
        ids.push(
          (await postJson(`${node.url}/api/push`, { channel: 'size:a', event: 'e', data: n })).body
            .id as string,
        );
      const res = await fetch(`${node.url}/api/channels/size:a/history?limit=100`, {
        headers: { authorization: `Bearer ${API_KEY}` },
      });
      const page = (await res.json()) as {
        messages: Array<{ id: string; offset: string }>;
        offset: string;
      };
      expect(page.messages.map((m) => m.id)).toEqual(ids.slice(3));
      const epoch = page.offset.split(':')[0]!;
      const c = await connectClient(node.url, {
        token: await token({ sub: 'u', channels: ['size:a'] }),
      });
      try {
        // Offsets 1..6 exist; history holds 4..6: since 3 recovers exactly those, since 2 cannot.
        expect(await c.join('size:a', { since: `${epoch}:3` })).toMatchObject({
          recovered: true,
          missed: 3,
        });
        await c.emit('leave', { channel: 'size:a' });
        expect(await c.join('size:a', { since: `${epoch}:2` })).toMatchObject({ recovered: false });
      } finally {
        c.close();
      }
    });
  }
});
