import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hooks } from '../../src/auth/hooks.js';
import type { ChannelMessage } from '../../src/delivery/message.js';
import { expectExactly, until } from '../support/assertions.js';
import {
  API_KEY,
  connectClient,
  postJson,
  startNode,
  token,
  type TestClient,
  type TestNode,
} from '../support/nodes.js';
import { startRedis, type RedisFixture } from '../support/redis.js';

/**
 * Issue items 4 and 5. Every socket event is answered within `redis.commandTimeoutMs` (plus a
 * little) whether Redis is up, down or paused: a plain join during an outage holds the room and
 * answers ok without `offset`, a join with `since` answers `recovered: false`, and the room gets
 * pushes once Redis is back. A `since` past every position (huge counts) answers `recovered:
 * false` / `complete: false` in Redis mode exactly as in memory mode, never "Redis unreachable".
 *
 * "Answered during the outage" is checked by order, not by time: the answers are awaited before
 * the outage is ended (a stopped Redis is restarted only after them; a paused one is watched by a
 * PING sent once the pause is in effect, which Redis answers only when the pause is over).
 */

const COMMAND_TIMEOUT_MS = 300;
/** How long a pause lasts: ten times the command timeout. */
const PAUSE_MS = 3000;

type OutageKind = 'paused' | 'stopped';

interface Outage {
  /** True until the outage is over. */
  on(): boolean;
  /** Ends it (a stopped Redis is started again; a paused one is waited out). */
  end(): Promise<void>;
}

/** Makes Redis unresponsive: CLIENT PAUSE ALL (connections stay open), or a stopped server. */
async function beginOutage(kind: OutageKind, redis: RedisFixture): Promise<Outage> {
  if (kind === 'stopped') {
    await redis.stop();
    let on = true;
    return {
      on: () => on,
      end: async () => {
        await redis.restart();
        on = false;
      },
    };
  }
  const admin = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
  const probe = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
  admin.on('error', () => {});
  probe.on('error', () => {});
  await Promise.all([admin.connect(), probe.connect()]);
  try {
    expect(await admin.call('CLIENT', 'PAUSE', String(PAUSE_MS), 'ALL')).toBe('OK');
  } finally {
    admin.disconnect();
  }
  let on = true;
  // Sent after the pause took effect, so answered only once it is over.
  const over = probe.ping().then(
    () => {
      on = false;
      probe.disconnect();
    },
    (err: unknown) => {
      probe.disconnect();
      throw err;
    },
  );
  return { on: () => on, end: () => over };
}

/** Pushes until the node accepts it (503 while Redis is away or not back yet); the push id. */
async function pushOk(node: TestNode, channel: string, data: unknown): Promise<string> {
  const res = await until(
    async () => {
      const r = await postJson(`${node.url}/api/push`, { channel, event: 'e', data });
      return r.status === 200 && r;
    },
    15_000,
    `a push to ${channel} answered 200`,
  );
  return res.body.id as string;
}

/** The channel's subscribers across the cluster, as the API counts them. */
async function subscribers(node: TestNode, channel: string): Promise<number> {
  const res = await fetch(`${node.url}/api/channels/${encodeURIComponent(channel)}`, {
    headers: { authorization: `Bearer ${API_KEY}` },
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { subscribers: number }).subscribers;
}

async function history(node: TestNode, channel: string, since: string): Promise<Response> {
  return fetch(
    `${node.url}/api/channels/${encodeURIComponent(channel)}/history?since=${encodeURIComponent(since)}`,
    { headers: { authorization: `Bearer ${API_KEY}` } },
  );
}

function outageSuite(kind: OutageKind): void {
  describe(`socket events while Redis is ${kind} (commandTimeoutMs ${COMMAND_TIMEOUT_MS})`, () => {
    let redis: RedisFixture;
    let node: TestNode;
    const clients: TestClient[] = [];
    const client = async (): Promise<TestClient> => {
      const c = await connectClient(node.url, {
        token: await token({ sub: 'u', channels: ['o:*'] }),
      });
      clients.push(c);
      return c;
    };
    let outage: Outage | undefined;
    /** Channels whose join was authorized (the join then waits on Redis). */
    const authorized: string[] = [];
    const hooks: Hooks = {
      authorizeJoin(socket, channel, params, defaults) {
        authorized.push(channel);
        return defaults.authorizeJoin(socket, channel, params);
      },
    };

    beforeAll(async () => {
      redis = await startRedis();
      node = await startNode(
        { redisUrl: redis.url, redis: { commandTimeoutMs: COMMAND_TIMEOUT_MS } },
        hooks,
      );
    });
    afterAll(async () => {
      for (const c of clients) c.close();
      await outage?.end().catch(() => {});
      await node?.stop();
      await redis?.stop();
    });

    it('a plain join answers ok and a join with since recovered: false before the outage ends; pushes reach both after it', async () => {
      const plainChannel = `o:${kind}:plain`;
      const sinceChannel = `o:${kind}:since`;
      const a = await client();
      const b = await client();
      // A real position, then messages after it: a recovery would have something to replay.
      const first = await b.join(sinceChannel);
      expect(typeof first.offset).toBe('string');
      expect(await b.emit('leave', { channel: sinceChannel })).toEqual({ ok: true });
      await pushOk(node, sinceChannel, 'missed 1');
      await pushOk(node, sinceChannel, 'missed 2');

      outage = await beginOutage(kind, redis);
      const [plain, recovering] = await Promise.all([
        a.join(plainChannel),
        b.join(sinceChannel, { since: first.offset }),
      ]);
      // Both answered while Redis is still away.
      expect(outage.on()).toBe(true);
      expect(plain).toEqual({ ok: true, channel: plainChannel });
      expect(recovering).toEqual({ ok: true, channel: sinceChannel, recovered: false });
      await outage.end();
      outage = undefined;

      // Redis is back: the rooms joined during the outage were subscribed again.
      const toA = await pushOk(node, plainChannel, 'live a');
      const toB = await pushOk(node, sinceChannel, 'live b');
      await until(
        () => a.messages.length >= 1 && b.messages.length >= 1,
        10_000,
        'the pushes made after the outage',
      );
      expect(a.messages.map((m) => m.id)).toEqual([toA]);
      // Not recovered: nothing replayed, neither during the outage nor later.
      expect(b.messages.map((m) => m.id)).toEqual([toB]);
      // Each socket is in its room once: one more push each, exactly one delivery.
      await expectExactly(node, a, plainChannel, 1);
      await expectExactly(node, b, sinceChannel, 1);
      expect(await subscribers(node, plainChannel)).toBe(1);
      expect(await subscribers(node, sinceChannel)).toBe(1);
    });

    it('leave and refresh are answered during the outage, and so is the join they overtake; none of it acts later', async () => {
      const channel = `o:${kind}:left`;
      const other = `o:${kind}:left-other`;
      const c = await client();
      const first = await c.join(channel);
      expect(await c.emit('leave', { channel })).toEqual({ ok: true });
      await pushOk(node, channel, 'missed');

      outage = await beginOutage(kind, redis);
      const before = authorized.length;
      const joining = c.join(channel, { since: first.offset });
      // Authorized: from here on the join waits on Redis (at most the command timeout).
      await until(() => authorized.length > before, 5000, 'the join to be authorized');
      // A refresh checks the pending join again (allowed), then the leave calls it off.
      const refreshed = await c.emit('refresh', {
        token: await token({ sub: 'u', channels: ['o:*'] }),
      });
      const left = await c.emit('leave', { channel });
      const joined = await joining;
      // All three answered while Redis is still away.
      expect(outage.on()).toBe(true);
      expect(refreshed).toEqual({ ok: true });
      expect(left).toEqual({ ok: true });
      // Paused, the join waits on Redis (up to the command timeout) and the leave overtakes it;
      // down, it fails fast and may answer before the refresh and the leave arrive (the leave
      // then takes the socket out). Either way it is answered in time, and nothing is left.
      expect([
        { ok: false, error: 'invalid_request' },
        { ok: true, channel, recovered: false },
      ]).toContainEqual(joined);
      await outage.end();
      outage = undefined;

      // No late join, no late replay: a push on the channel does not reach the socket.
      expect(
        await until(
          async () => {
            const ack = await c.join(other);
            return ack.ok === true && ack;
          },
          15_000,
          'a join after the outage',
        ),
      ).toMatchObject({ ok: true, channel: other });
      await pushOk(node, channel, 'after');
      await expectExactly(node, c, other, 0);
      expect(await subscribers(node, channel)).toBe(0);
    });
  });
}

outageSuite('paused');
outageSuite('stopped');

/**
 * A `since` far past the channel's position, in both stores: a join answers `recovered: false`
 * with the current offset, the history route `200 complete: false`. The same answers, field for
 * field, in memory and in Redis.
 */
function hugeSinceSuite(
  name: string,
  start: () => Promise<{ node: TestNode; redis?: RedisFixture }>,
) {
  describe(`since past every position (${name})`, () => {
    let node: TestNode;
    let redis: RedisFixture | undefined;
    beforeAll(async () => {
      ({ node, redis } = await start());
    });
    afterAll(async () => {
      await node?.stop();
      await redis?.stop();
    });
    const client = async (channel: string): Promise<TestClient> =>
      connectClient(node.url, { token: await token({ sub: 'u', channels: [channel] }) });

    it('<epoch>:99999999999999 and counts past 2^53: join recovered: false, history 200 complete: false', async () => {
      const channel = 'big:since';
      const c = await client(channel);
      expect(await c.join(channel)).toMatchObject({ ok: true });
      await pushOk(node, channel, 1);
      await pushOk(node, channel, 2);
      const got = await c.waitFor(2);
      c.close();
      const top = got[1]!.offset!;
      const epoch = top.split(':')[0]!;
      for (const since of [
        `${epoch}:99999999999999`,
        `${epoch}:100000000000000`,
        `${epoch}:9007199254740993`,
        `${epoch}:${'9'.repeat(80)}`,
      ]) {
        const again = await client(channel);
        try {
          expect(await again.join(channel, { since })).toEqual({
            ok: true,
            channel,
            recovered: false,
            offset: top,
          });
        } finally {
          again.close();
        }
        const res = await history(node, channel, since);
        expect(res.status).toBe(200);
        expect(await res.json()).toEqual({ channel, messages: [], offset: top, complete: false });
      }
      // Not offsets at all (no count in digits): no recovery; the route refuses them (422).
      for (const since of [`${epoch}:1e400`, `${epoch}:1e+14`, `${epoch}:-1`]) {
        const again = await client(channel);
        try {
          expect(await again.join(channel, { since })).toEqual({
            ok: true,
            channel,
            recovered: false,
            offset: top,
          });
        } finally {
          again.close();
        }
        expect((await history(node, channel, since)).status).toBe(422);
      }
    });
  });
}

hugeSinceSuite('memory', async () => ({ node: await startNode() }));
hugeSinceSuite('redis', async () => {
  const redis = await startRedis();
  return { node: await startNode({ redisUrl: redis.url }), redis };
});

describe('a channel whose count passed 1e14 (redis)', () => {
  let node: TestNode;
  let redis: RedisFixture;
  beforeAll(async () => {
    redis = await startRedis();
    node = await startNode({ redisUrl: redis.url });
  });
  afterAll(async () => {
    await node?.stop();
    await redis?.stop();
  });

  it('still publishes, serves history after such an offset and recovers from it', async () => {
    const channel = 'big:count';
    const c = await connectClient(node.url, {
      token: await token({ sub: 'u', channels: [channel] }),
    });
    try {
      expect(await c.join(channel)).toMatchObject({ ok: true });
      await pushOk(node, channel, 'first');
      const [first] = await c.waitFor(1);
      const epoch = first!.offset!.split(':')[0]!;
      // Where a very long-lived channel would be: Lua writes 1e14 as "1e+14" unless told not to.
      const admin = new Redis(redis.url);
      try {
        await admin.hset(`pc:{${channel}}:m`, 's', '99999999999998');
      } finally {
        admin.disconnect();
      }
      const res = await postJson(`${node.url}/api/push`, { channel, event: 'e', data: 'a' });
      expect(res.status).toBe(200);
      await pushOk(node, channel, 'b');
      const got: ChannelMessage[] = await c.waitFor(3);
      expect(got.slice(1).map((m) => m.offset)).toEqual([
        `${epoch}:99999999999999`,
        `${epoch}:100000000000000`,
      ]);
      const page = await history(node, channel, `${epoch}:99999999999999`);
      expect(page.status).toBe(200);
      const body = (await page.json()) as { messages: ChannelMessage[]; offset: string };
      expect(body).toMatchObject({ channel, offset: `${epoch}:100000000000000`, complete: true });
      expect(body.messages.map((m) => m.data)).toEqual(['b']);
      const again = await connectClient(node.url, {
        token: await token({ sub: 'u', channels: [channel] }),
      });
      try {
        expect(await again.join(channel, { since: `${epoch}:99999999999999` })).toEqual({
          ok: true,
          channel,
          recovered: true,
          missed: 1,
          offset: `${epoch}:100000000000000`,
        });
        expect((await again.waitFor(1)).map((m) => m.data)).toEqual(['b']);
      } finally {
        again.close();
      }
    } finally {
      c.close();
    }
  });
});
