import { Redis } from 'ioredis';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hooks } from '../../src/auth/hooks.js';
import { expectExactly } from '../support/assertions.js';
import { useRedisCluster } from '../support/cluster.js';
import { Gates } from '../support/gates.js';
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
 * Security items 4 and 5: a refresh takes away the channels the new token no longer allows (with
 * a `left` event), and a leave wins over a join of the same channel that has not answered yet.
 */

/** The channel's subscribers across the cluster, as the API counts them. */
async function subscribers(node: TestNode, channel: string): Promise<number> {
  const res = await fetch(`${node.url}/api/channels/${encodeURIComponent(channel)}`, {
    headers: { authorization: `Bearer ${API_KEY}` },
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { subscribers: number }).subscribers;
}

async function push(node: TestNode, channel: string, data: unknown = null): Promise<string> {
  const res = await postJson(`${node.url}/api/push`, { channel, event: 'e', data });
  expect(res.status).toBe(200);
  return res.body.id as string;
}

/** `left` events a client received, in order. */
function lefts(client: TestClient): unknown[] {
  const got: unknown[] = [];
  client.socket.on('left', (info: unknown) => got.push(info));
  return got;
}

const gates = new Gates();
const asked: Array<{ channel: string; params: unknown; data: Record<string, unknown> }> = [];

/**
 * The JWT as usual, plus the token's `tier` claim in the socket's data; `vip:*` needs tier gold,
 * `locked:*` needs the join's params `{ key: "open" }`; anything else: the built-in rule.
 */
const hooks: Hooks = {
  async authenticateSocket(handshake, defaults) {
    const identity = await defaults.authenticateSocket(handshake);
    const { tier } = decodeJwt(String(handshake.auth.token));
    return { ...identity, data: typeof tier === 'string' ? { tier } : {} };
  },
  async authorizeJoin(socket, channel, params, defaults) {
    asked.push({ channel, params, data: socket.data });
    await gates.pass(channel);
    if (channel.startsWith('vip:')) return socket.data.tier === 'gold';
    if (channel.startsWith('locked:'))
      return (params as { key?: unknown } | undefined)?.key === 'open';
    return defaults.authorizeJoin(socket, channel, params);
  },
};

describe('session revocation on one node', () => {
  let node: TestNode;
  const clients: TestClient[] = [];
  const connect = async (claims: { sub: string; [k: string]: unknown }): Promise<TestClient> => {
    const c = await connectClient(node.url, { token: await token(claims) });
    clients.push(c);
    return c;
  };
  beforeAll(async () => {
    node = await startNode({}, hooks);
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await node?.stop();
  });

  describe('a leave wins over a join that has not answered', () => {
    it('a leave while the join is authorizing: leave ok, join refused, not subscribed, nothing delivered', async () => {
      const c = await connect({ sub: 'l1', channels: ['p:*'] });
      expect(await c.join('p:l1-other')).toMatchObject({ ok: true });
      const gate = gates.arm('p:l1');
      const joining = c.join('p:l1');
      await gate.reached;
      expect(await c.emit('leave', { channel: 'p:l1' })).toEqual({ ok: true });
      gate.open();
      expect(await joining).toEqual({ ok: false, error: 'invalid_request' });
      expect(await subscribers(node, 'p:l1')).toBe(0);
      await push(node, 'p:l1', 'must not arrive');
      await expectExactly(node, c, 'p:l1-other', 0);
    });

    it('join, leave, join again: the second join holds and the first one never undoes it', async () => {
      const c = await connect({ sub: 'l2', channels: ['p:*'] });
      const first = gates.arm('p:l2');
      const joining = c.join('p:l2');
      await first.reached;
      expect(await c.emit('leave', { channel: 'p:l2' })).toEqual({ ok: true });
      // The second join is a join of its own (authorized again), not the first one's answer.
      const second = gates.arm('p:l2');
      const again = c.join('p:l2');
      await second.reached;
      second.open();
      expect(await again).toMatchObject({ ok: true, channel: 'p:l2' });
      first.open();
      expect(await joining).toEqual({ ok: false, error: 'invalid_request' });
      expect(await subscribers(node, 'p:l2')).toBe(1);
      const id = await push(node, 'p:l2', 'once');
      await expectExactly(node, c, 'p:l2', 1);
      expect(c.messages[0]!.id).toBe(id);
    });
  });

  describe('refresh checks every joined channel again', () => {
    it('a refused refresh changes nothing; a narrower token takes away what it no longer covers, with a left event', async () => {
      const c = await connect({ sub: 'r1', channels: ['a:*', 'b:*'] });
      const left = lefts(c);
      expect(await c.join('a:1')).toMatchObject({ ok: true });
      expect(await c.join('b:1')).toMatchObject({ ok: true });

      // Refused refreshes: another user, a bad signature, no token at all.
      const unauthorized = { ok: false, error: 'unauthorized' };
      for (const t of [
        await token({ sub: 'someone-else', channels: ['a:*'] }),
        await token({ sub: 'r1', channels: ['a:*'] }, { secret: 'x'.repeat(40) }),
        'not-a-jwt',
      ])
        expect(await c.emit('refresh', { token: t })).toEqual(unauthorized);
      expect(left).toEqual([]);
      expect(await subscribers(node, 'b:1')).toBe(1);
      await push(node, 'b:1', 'still joined');
      await expectExactly(node, c, 'a:1', 1);
      expect(c.messages[0]!.data).toBe('still joined');

      // The left event goes out before the refresh's answer.
      const narrower = await token({ sub: 'r1', channels: ['a:*'] });
      expect(await c.emit('refresh', { token: narrower })).toEqual({ ok: true });
      expect(left).toEqual([{ channel: 'b:1', reason: 'forbidden' }]);
      expect(await subscribers(node, 'b:1')).toBe(0);
      expect(await subscribers(node, 'a:1')).toBe(1);
      await push(node, 'b:1', 'gone');
      await expectExactly(node, c, 'a:1', 2);
      expect(c.messages.map((m) => m.data)).toEqual(['still joined', 0, 0]);
      // The new token is the one joins are checked against from now on.
      expect(await c.join('b:1')).toEqual({ ok: false, error: 'forbidden' });
      expect(await c.join('a:2')).toMatchObject({ ok: true });
      expect(left).toHaveLength(1);
    });

    it('asks the authorizeJoin hook again, with the new identity and the params of the join', async () => {
      const c = await connect({ sub: 'r2', tier: 'gold', channels: ['plain:*'] });
      const left = lefts(c);
      expect(await c.join('vip:1')).toMatchObject({ ok: true });
      expect(await c.join('locked:1', { params: { key: 'open' } })).toMatchObject({ ok: true });
      expect(await c.join('plain:1')).toMatchObject({ ok: true });
      asked.length = 0;

      const silver = await token({ sub: 'r2', tier: 'silver', channels: ['plain:*'] });
      expect(await c.emit('refresh', { token: silver })).toEqual({ ok: true });
      expect(left).toEqual([{ channel: 'vip:1', reason: 'forbidden' }]);
      expect(asked.filter((a) => a.channel.startsWith('locked:'))).toEqual([
        { channel: 'locked:1', params: { key: 'open' }, data: { tier: 'silver' } },
      ]);
      expect(asked.map((a) => a.channel).sort()).toEqual(['locked:1', 'plain:1', 'vip:1']);

      for (const channel of ['vip:1', 'locked:1', 'plain:1']) await push(node, channel, channel);
      await expectExactly(node, c, 'plain:1', 2);
      expect(c.messages.map((m) => m.data)).toEqual(['locked:1', 'plain:1', 0]);
      expect(await subscribers(node, 'vip:1')).toBe(0);
    });

    it('a join still pending when a refresh no longer allows it answers forbidden and never joins', async () => {
      const c = await connect({ sub: 'r3', channels: ['q:*'] });
      const left = lefts(c);
      expect(await c.join('q:kept')).toMatchObject({ ok: true });
      const gate = gates.arm('q:pending');
      const joining = c.join('q:pending');
      await gate.reached;
      const narrower = await token({ sub: 'r3', channels: ['q:kept'] });
      expect(await c.emit('refresh', { token: narrower })).toEqual({ ok: true });
      gate.open();
      expect(await joining).toEqual({ ok: false, error: 'forbidden' });
      // It never answered ok, so there is nothing to tell with `left`.
      expect(left).toEqual([]);
      expect(await subscribers(node, 'q:pending')).toBe(0);
      await push(node, 'q:pending', 'must not arrive');
      await expectExactly(node, c, 'q:kept', 0);
    });
  });
});

/**
 * Blocks every other client of the Redis for `ms` (CLIENT PAUSE ALL); resolves once the pause is
 * in effect, so a join started after it waits on Redis until the pause ends.
 */
async function pauseRedis(url: string, ms: number): Promise<void> {
  const admin = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0 });
  await admin.connect();
  try {
    expect(await admin.call('CLIENT', 'PAUSE', String(ms), 'ALL')).toBe('OK');
  } finally {
    admin.disconnect();
  }
}

describe('a leave wins over a pending join (Redis)', () => {
  const cluster = useRedisCluster();

  it('a leave while a join with since is catching up: no replay, no room', async () => {
    const { node } = cluster;
    const c = await connectClient(node.url, {
      token: await token({ sub: 'x1', channels: ['rs:*'] }),
    });
    try {
      expect(await c.join('rs:other')).toMatchObject({ ok: true });
      // A position to resume from, then two pushes after it that a recovery would replay.
      const first = await c.join('rs:since');
      expect(typeof first.offset).toBe('string');
      expect(await c.emit('leave', { channel: 'rs:since' })).toEqual({ ok: true });
      await push(node, 'rs:since', 'missed 1');
      await push(node, 'rs:since', 'missed 2');

      await pauseRedis(cluster.redis.url, 500);
      const joining = c.join('rs:since', { since: first.offset });
      // Answered at once, while the join waits on Redis.
      expect(await c.emit('leave', { channel: 'rs:since' })).toEqual({ ok: true });
      expect(await joining).toEqual({ ok: false, error: 'invalid_request' });
      expect(await subscribers(node, 'rs:since')).toBe(0);
      await push(node, 'rs:since', 'live');
      await expectExactly(node, c, 'rs:other', 0);
    } finally {
      c.close();
    }
  });

  it('a leave while a plain join waits for its subscription: the join answers invalid_request', async () => {
    const { node } = cluster;
    const c = await connectClient(node.url, {
      token: await token({ sub: 'x2', channels: ['rp:*'] }),
    });
    try {
      expect(await c.join('rp:other')).toMatchObject({ ok: true });
      await pauseRedis(cluster.redis.url, 500);
      const joining = c.join('rp:plain');
      expect(await c.emit('leave', { channel: 'rp:plain' })).toEqual({ ok: true });
      expect(await joining).toEqual({ ok: false, error: 'invalid_request' });
      expect(await subscribers(node, 'rp:plain')).toBe(0);
      await push(node, 'rp:plain', 'must not arrive');
      await expectExactly(node, c, 'rp:other', 0);
      // A join after that is an ordinary join.
      expect(await c.join('rp:plain')).toMatchObject({ ok: true, channel: 'rp:plain' });
      expect(await subscribers(node, 'rp:plain')).toBe(1);
    } finally {
      c.close();
    }
  });
});
