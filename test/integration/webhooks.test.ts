import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WebhookEvent } from '../../src/webhooks/events.js';
import { until } from '../support/assertions.js';
import {
  API_KEY,
  JWT_SECRET,
  startNode,
  type TestClient,
  type TestNode,
} from '../support/nodes.js';
import { freePort } from '../support/ports.js';
import { spawnNode, type NodeProcess } from '../support/process.js';
import { startRedis, type RedisFixture } from '../support/redis.js';
import {
  memberOf,
  startWebhookReceiver,
  type WebhookReceiver,
} from '../support/webhook-receiver.js';

const SECRET = 'webhook-test-secret-0123456789';
const DELAY_MS = 400;
const NODE_TIMEOUT_MS = 1500;

const webhookSettings = (url: string) => ({
  url,
  secret: SECRET,
  vacateDelayMs: DELAY_MS,
  nodeTimeoutMs: NODE_TIMEOUT_MS,
});

/** The receiver's accepted events of `channel`, as `name user` lines. */
const seen = (receiver: WebhookReceiver, channel: string): string[] =>
  receiver
    .accepted()
    .filter((e) => e.channel === channel)
    .map((e) => (e.userId === undefined ? e.name : `${e.name} ${e.userId}`));

/** Waits until `channel`'s events are exactly `expected`, then a while longer to see nothing more comes. */
async function expectEvents(receiver: WebhookReceiver, channel: string, expected: string[]) {
  await until(
    () => seen(receiver, channel).length >= expected.length,
    8000,
    `webhook events of ${channel}: ${expected.join(', ')}`,
  );
  await new Promise((r) => setTimeout(r, DELAY_MS + 600));
  expect(seen(receiver, channel)).toEqual(expected);
}

describe('webhooks on one node (memory)', () => {
  let receiver: WebhookReceiver;
  let node: TestNode;
  beforeAll(async () => {
    receiver = await startWebhookReceiver(SECRET);
    node = await startNode({ webhooks: webhookSettings(receiver.url) });
  });
  afterAll(async () => {
    await node?.stop();
    await receiver?.stop();
  });

  it('occupied and added once, removed and vacated after the delay; signed, batched, stable ids', async () => {
    const a = await memberOf(node.url, 'ann', 'wh:one');
    const again = await memberOf(node.url, 'ann', 'wh:one');
    await expectEvents(receiver, 'wh:one', ['channel_occupied', 'member_added ann']);
    a.close();
    await new Promise((r) => setTimeout(r, DELAY_MS + 300));
    // Ann still has a socket on the channel: nothing yet.
    expect(seen(receiver, 'wh:one')).toHaveLength(2);
    again.close();
    await expectEvents(receiver, 'wh:one', [
      'channel_occupied',
      'member_added ann',
      'member_removed ann',
      'channel_vacated',
    ]);
    for (const request of receiver.requests) {
      expect(request.signed).toBe(true);
      expect(request.signature).toMatch(/^sha256=[0-9a-f]{64}$/);
    }
    const events = receiver.accepted().filter((e) => e.channel === 'wh:one');
    expect(new Set(events.map((e) => e.id)).size).toBe(4);
    for (const e of events)
      expect(Object.keys(e).sort()).toEqual(
        e.userId === undefined
          ? ['channel', 'id', 'name', 'ts']
          : ['channel', 'id', 'name', 'ts', 'userId'],
      );
    // The vacate carries when the last socket left, not when the delay ran out.
    const vacated = events.at(-1)!;
    expect(vacated.ts).toBeLessThan(Date.now() - DELAY_MS);
  });

  it('a member back within the delay is neither removed nor added again', async () => {
    const first = await memberOf(node.url, 'bob', 'wh:flap');
    await expectEvents(receiver, 'wh:flap', ['channel_occupied', 'member_added bob']);
    first.close();
    const second = await memberOf(node.url, 'bob', 'wh:flap');
    await expectEvents(receiver, 'wh:flap', ['channel_occupied', 'member_added bob']);
    second.close();
  });
});

describe('webhooks across nodes (Redis)', () => {
  let redis: RedisFixture;
  let receiver: WebhookReceiver;
  const nodes: TestNode[] = [];
  beforeAll(async () => {
    redis = await startRedis();
    receiver = await startWebhookReceiver(SECRET);
    for (let i = 0; i < 2; i++)
      nodes.push(await startNode({ redisUrl: redis.url, webhooks: webhookSettings(receiver.url) }));
  });
  afterAll(async () => {
    await Promise.allSettled(nodes.map((n) => n.stop()));
    await receiver?.stop();
    await redis?.stop();
  });

  it('each transition once per cluster, whichever node its sockets are on', async () => {
    const a = await memberOf(nodes[0]!.url, 'a', 'wh:two');
    const b = await memberOf(nodes[1]!.url, 'b', 'wh:two');
    const a2 = await memberOf(nodes[1]!.url, 'a', 'wh:two');
    await expectEvents(receiver, 'wh:two', [
      'channel_occupied',
      'member_added a',
      'member_added b',
    ]);
    a.close();
    a2.close();
    await expectEvents(receiver, 'wh:two', [
      'channel_occupied',
      'member_added a',
      'member_added b',
      'member_removed a',
    ]);
    b.close();
    await expectEvents(receiver, 'wh:two', [
      'channel_occupied',
      'member_added a',
      'member_added b',
      'member_removed a',
      'member_removed b',
      'channel_vacated',
    ]);
  });

  it('no flap through a reconnect to another node', async () => {
    const before = await memberOf(nodes[0]!.url, 'c', 'wh:move');
    await expectEvents(receiver, 'wh:move', ['channel_occupied', 'member_added c']);
    before.close();
    const after = await memberOf(nodes[1]!.url, 'c', 'wh:move');
    await expectEvents(receiver, 'wh:move', ['channel_occupied', 'member_added c']);
    after.close();
  });

  it('no flap through a rolling deploy: a node drains, its clients come back on the other', async () => {
    const leaving = await startNode({
      redisUrl: redis.url,
      webhooks: webhookSettings(receiver.url),
    });
    const socket = await memberOf(leaving.url, 'd', 'wh:deploy');
    await expectEvents(receiver, 'wh:deploy', ['channel_occupied', 'member_added d']);
    const closed = new Promise((r) => socket.socket.once('disconnect', r));
    await leaving.stop();
    await closed;
    const back = await memberOf(nodes[0]!.url, 'd', 'wh:deploy');
    await expectEvents(receiver, 'wh:deploy', ['channel_occupied', 'member_added d']);
    back.close();
  });

  it('a node SIGKILLed with members: their member_removed and channel_vacated still fire', async () => {
    await using killed = await spawnReadyNode(redis.url, {
      PUSHCAST_WEBHOOK_URL: receiver.url,
      PUSHCAST_WEBHOOK_SECRET: SECRET,
      PUSHCAST_WEBHOOK_VACATE_DELAY_MS: String(DELAY_MS),
      PUSHCAST_WEBHOOK_NODE_TIMEOUT_MS: String(NODE_TIMEOUT_MS),
    });
    const e = await memberOf(killed.url, 'e', 'wh:killed');
    const f = await memberOf(killed.url, 'f', 'wh:killed');
    await expectEvents(receiver, 'wh:killed', [
      'channel_occupied',
      'member_added e',
      'member_added f',
    ]);
    const killedAt = Date.now();
    killed.kill('SIGKILL');
    await killed.exited;
    await until(
      () => seen(receiver, 'wh:killed').length === 6,
      NODE_TIMEOUT_MS + DELAY_MS + 5000,
      'the killed node members removed and the channel vacated',
    );
    const late = seen(receiver, 'wh:killed').slice(3);
    expect(late.slice(0, 2).sort()).toEqual(['member_removed e', 'member_removed f']);
    expect(late[2]).toBe('channel_vacated');
    // The bound the README states: node timeout + vacate delay + a few ticks.
    expect(Date.now() - killedAt).toBeLessThan(NODE_TIMEOUT_MS * 2 + DELAY_MS + 3000);
    e.close();
    f.close();
  });

  it('a node taken for dead while alive (stalled) states its members again: no flap, and its leaves still count', async () => {
    const socket = await memberOf(nodes[0]!.url, 's', 'wh:stall');
    await expectEvents(receiver, 'wh:stall', ['channel_occupied', 'member_added s']);
    // As if node 0 had stalled past the node timeout and node 1 had taken its members down (what
    // the heartbeat script does to a silent node), the vacates due a little later than the
    // test's short delay so that the comeback surely falls within it.
    const admin = new Redis(redis.url);
    const channelSet = 'pc:{wh}:c\0wh:stall';
    try {
      const alive = await admin.zrange('pc:{wh}:alive', '0', '-1');
      const holds = await Promise.all(alive.map((id) => admin.sismember(channelSet, id)));
      const stalled = alive[holds.indexOf(1)]!;
      await admin
        .multi()
        .zrem('pc:{wh}:alive', stalled)
        .del(`pc:{wh}:held\0${stalled}`)
        .srem(channelSet, stalled)
        .srem('pc:{wh}:m\0wh:stall\0s', stalled)
        .zadd('pc:{wh}:due', String(Date.now() + 3000), 'm\0wh:stall\0s')
        .zadd('pc:{wh}:due', String(Date.now() + 3000.5), 'c\0wh:stall')
        .exec();
      // Its next heartbeat finds it gone and it states what it holds again.
      await until(
        async () => (await admin.sismember(channelSet, stalled)) === 1,
        NODE_TIMEOUT_MS + 2000,
        'the node stating its members again',
      );
    } finally {
      admin.disconnect();
    }
    await new Promise((r) => setTimeout(r, 3000));
    await expectEvents(receiver, 'wh:stall', ['channel_occupied', 'member_added s']);
    socket.close();
    await expectEvents(receiver, 'wh:stall', [
      'channel_occupied',
      'member_added s',
      'member_removed s',
      'channel_vacated',
    ]);
  });

  it('a deliverer killed mid-request leaves its unconfirmed events to another node', async () => {
    const own = await startWebhookReceiver(SECRET);
    own.answer(0); // the request hangs: the deliverer dies with it in flight
    const prefix = `handover${Math.random().toString(36).slice(2, 7)}`;
    const webhookEnv = {
      PUSHCAST_WEBHOOK_URL: own.url,
      PUSHCAST_WEBHOOK_SECRET: SECRET,
      PUSHCAST_WEBHOOK_TIMEOUT_MS: '1000',
      PUSHCAST_WEBHOOK_NODE_TIMEOUT_MS: String(NODE_TIMEOUT_MS),
      PUSHCAST_REDIS_KEY_PREFIX: prefix,
    };
    let other: TestNode | undefined;
    try {
      await using first = await spawnReadyNode(redis.url, webhookEnv);
      const m = await memberOf(first.url, 'k', 'wh:handover');
      await until(() => own.requests.length > 0, 5000, 'the first delivery attempt');
      const inFlight = own.requests[0]!.events.map((e) => e.id);
      // The only other node, and the receiver answering again: only it can deliver now.
      other = await startNode({
        redisUrl: redis.url,
        redis: { keyPrefix: prefix },
        webhooks: {
          url: own.url,
          secret: SECRET,
          timeoutMs: 1000,
          nodeTimeoutMs: NODE_TIMEOUT_MS,
          vacateDelayMs: DELAY_MS,
        },
      });
      first.kill('SIGKILL');
      await first.exited;
      own.answer(200);
      await until(
        () => inFlight.every((id) => own.accepted().some((e) => e.id === id)),
        15_000,
        "the killed deliverer's events delivered by the other node",
      );
      expect(
        own
          .accepted()
          .filter((e) => e.channel === 'wh:handover')
          .slice(0, 2)
          .map((e) => e.name),
      ).toEqual(['channel_occupied', 'member_added']);
      m.close();
    } finally {
      await other?.stop();
      await own.stop();
    }
  });

  it('receiver down, then up: everything arrives, in order, signed, with the ids it had', async () => {
    receiver.answer(503);
    const g = await memberOf(nodes[0]!.url, 'g', 'wh:down');
    const h = await memberOf(nodes[1]!.url, 'h', 'wh:down');
    g.close();
    h.close();
    // Failed attempts happen (and are retried) while it is down.
    await until(
      () =>
        receiver.requests.filter((r) => r.events.some((e) => e.channel === 'wh:down')).length >= 2,
      10_000,
      'retried requests while the receiver is down',
    );
    const triedIds = new Set(
      receiver.requests
        .flatMap((r) => r.events)
        .filter((e) => e.channel === 'wh:down')
        .map((e) => e.id),
    );
    // While it is down the undelivered events are counted as pending (cluster-wide, from Redis).
    await until(
      async () =>
        Number(
          /^pushcast_webhook_events_pending (\S+)$/m.exec(
            await (await fetch(`${nodes[0]!.url}/metrics`)).text(),
          )?.[1] ?? 0,
        ) > 0,
      5000,
      'pending events while the receiver is down',
    );
    receiver.answer(200);
    await until(
      () => seen(receiver, 'wh:down').length === 6,
      40_000,
      'all events after the receiver came back',
    );
    // g and h left at the same moment on two nodes: either removal may come first.
    const got = seen(receiver, 'wh:down');
    expect(got.slice(0, 3)).toEqual(['channel_occupied', 'member_added g', 'member_added h']);
    expect(got.slice(3, 5).sort()).toEqual(['member_removed g', 'member_removed h']);
    expect(got[5]).toBe('channel_vacated');
    // Every event tried while the receiver was down arrived later under the same id.
    const delivered: WebhookEvent[] = receiver.accepted().filter((e) => e.channel === 'wh:down');
    const deliveredIds = new Set(delivered.map((e) => e.id));
    expect(deliveredIds.size).toBe(6);
    for (const id of triedIds) expect(deliveredIds.has(id)).toBe(true);
    expect(receiver.requests.every((r) => r.signed)).toBe(true);
    const metrics = await (await fetch(`${nodes[0]!.url}/metrics`)).text();
    const metrics1 = await (await fetch(`${nodes[1]!.url}/metrics`)).text();
    const sum = (name: string) =>
      [metrics, metrics1]
        .map((m) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(m)?.[1] ?? 0))
        .reduce((x, y) => x + y, 0);
    expect(sum('pushcast_webhook_requests_failed_total')).toBeGreaterThanOrEqual(2);
    expect(sum('pushcast_webhook_requests_retried_total')).toBeGreaterThanOrEqual(2);
    expect(sum('pushcast_webhook_events_sent_total')).toBeGreaterThanOrEqual(6);
  });
});

describe('webhooks: bounded while the receiver is down', () => {
  it('keeps the newest maxPending events, counts and logs the dropped ones', async () => {
    await using receiver = await startWebhookReceiver(SECRET);
    receiver.answer(503);
    const node = await startNode({
      webhooks: { ...webhookSettings(receiver.url), maxPending: 3, events: ['channel_occupied'] },
    });
    try {
      const sockets: TestClient[] = [];
      for (let i = 0; i < 6; i++) sockets.push(await memberOf(node.url, 'x', `wh:bound${i}`));
      await until(
        async () =>
          /^pushcast_webhook_events_dropped_total 3$/m.test(
            await (await fetch(`${node.url}/metrics`)).text(),
          ),
        5000,
        'three events dropped',
      );
      receiver.answer(200);
      await until(() => receiver.accepted().length === 3, 40_000, 'the three kept events');
      expect(receiver.accepted().map((e) => e.channel)).toEqual([
        'wh:bound3',
        'wh:bound4',
        'wh:bound5',
      ]);
      for (const s of sockets) s.close();
    } finally {
      await node.stop();
    }
  });
});

/**
 * A node in its own process on `redisUrl` (so that a test can SIGKILL it), with `env` on top of
 * the test keys; resolves once it answers /readyz 200.
 */
async function spawnReadyNode(
  redisUrl: string,
  env: Record<string, string>,
): Promise<NodeProcess & { url: string }> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const node = spawnNode({
    script: 'src/main.ts',
    env: {
      PORT: String(port),
      HOST: '127.0.0.1',
      REDIS_URL: redisUrl,
      NODE_ENV: 'test',
      LOG_LEVEL: 'warn',
      PUSHCAST_API_KEYS: API_KEY,
      PUSHCAST_JWT_SECRET: JWT_SECRET,
      ...env,
    },
  });
  try {
    await until(
      () =>
        fetch(`${url}/readyz`).then(
          (r) => r.ok,
          () => false,
        ),
      15_000,
      'the spawned node ready',
    );
  } catch (err) {
    await node[Symbol.asyncDispose]();
    throw err;
  }
  return Object.assign(node, { url });
}
