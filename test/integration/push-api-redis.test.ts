import { connect, type Socket } from 'node:net';
import { Redis } from 'ioredis';
import { beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisFixture } from '../support/redis.js';
import { API_KEY, postJson, startNode, type TestNode } from '../support/nodes.js';
import { expectExactly, subscriber, until } from '../support/assertions.js';
import { useRedisCluster } from '../support/cluster.js';
import { canConnect, inflightPushes } from '../support/probes.js';

const OTHER_KEY = 'other-key-0123456789abcdef';
const API_KEYS = [
  { key: API_KEY, id: 'test' },
  { key: OTHER_KEY, id: 'other' },
];

type Reply = Awaited<ReturnType<typeof postJson>>;

function expectUnavailable(reply: Reply): void {
  expect({ status: reply.status, code: reply.body.code }).toEqual({
    status: 503,
    code: 'unavailable',
  });
  expect(typeof reply.body.error).toBe('string');
  for (const k of Object.keys(reply.body)) expect(['error', 'code', 'details']).toContain(k);
  expect(reply.headers.get('retry-after')).toBe('1');
}

async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/**
 * Blocks every other client of the Redis for `ms` (CLIENT PAUSE ALL: the equivalent of
 * `DEBUG SLEEP`, which Redis 7 refuses by default); resolves once the pause is in effect.
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

describe('HTTP push API over Redis: two nodes sharing one Redis', () => {
  const cluster = useRedisCluster({ nodes: 2, config: { apiKeys: API_KEYS } });
  let redis: RedisFixture;
  let a: TestNode;
  let b: TestNode;
  beforeAll(() => {
    ({ redis } = cluster);
    [a, b] = cluster.nodes as [TestNode, TestNode];
  });

  it('answers 200 with {id, channel, event, data} and /readyz 200', async () => {
    const res = await postJson(`${a.url}/api/push`, {
      channel: ['r:1', 'r:2', 'r:1'],
      event: 'e',
      data: { x: 1 },
    });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      id: expect.stringMatching(/^[0-9A-HJKMNP-TV-Z]{26}$/) as unknown,
      channel: ['r:1', 'r:2'],
      event: 'e',
      data: { x: 1 },
    });
    expect(await getJson(`${a.url}/readyz`)).toEqual({ status: 200, body: { status: 'ready' } });
  });

  it('gives ids that are unique across nodes and increase in time order', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 60; i++) {
      const res = await postJson(`${(i % 2 ? a : b).url}/api/push`, {
        channel: 'r:ids',
        event: 'e',
        data: i,
      });
      ids.push(res.body.id as string);
    }
    expect(new Set(ids).size).toBe(60);
    // Sequential pushes a millisecond or more apart sort in order whatever the node.
    const sorted = [...ids].sort();
    const outOfOrder = ids.filter((id, i) => id !== sorted[i]);
    // Two pushes on different nodes within the same ms may sort by node id; never more than that.
    for (const id of outOfOrder)
      expect(Math.abs(ids.indexOf(id) - sorted.indexOf(id))).toBeLessThanOrEqual(1);
  });

  it('replays an Idempotency-Key used on node A when it comes again on node B, pushing once', async () => {
    const client = await subscriber(b, ['idem:x']);
    try {
      const body = { channel: 'idem:x', event: 'paid', data: { order: 7 } };
      const first = await postJson(`${a.url}/api/push`, body, { 'idempotency-key': 'order-7' });
      expect(first.status).toBe(200);
      const again = await postJson(`${b.url}/api/push`, body, { 'idempotency-key': 'order-7' });
      expect(again.status).toBe(200);
      expect(again.body).toEqual(first.body);
      expect(again.headers.get('idempotent-replayed')).toBe('true');
      await client.waitFor(1);
      expect(client.messages[0]).toMatchObject({ id: first.body.id, event: 'paid' });
      await expectExactly(a, client, 'idem:x', 1);
    } finally {
      client.close();
    }
  });

  it('refuses an Idempotency-Key reused on another node with a different body (422)', async () => {
    const client = await subscriber(a, ['idem:m']);
    try {
      const first = await postJson(
        `${a.url}/api/push`,
        { channel: 'idem:m', event: 'e', data: 1 },
        { 'idempotency-key': 'mismatch-1' },
      );
      expect(first.status).toBe(200);
      const other = await postJson(
        `${b.url}/api/push`,
        { channel: 'idem:m', event: 'e', data: 2 },
        { 'idempotency-key': 'mismatch-1' },
      );
      expect({ status: other.status, code: other.body.code }).toEqual({
        status: 422,
        code: 'idempotency_mismatch',
      });
      const batchReuse = await postJson(
        `${b.url}/api/push/batch`,
        { pushes: [{ channel: 'idem:m', event: 'e', data: 1 }] },
        { 'idempotency-key': 'mismatch-1' },
      );
      expect(batchReuse.body.code).toBe('idempotency_mismatch');
      await expectExactly(a, client, 'idem:m', 1);
    } finally {
      client.close();
    }
  });

  it('answers concurrent requests with one key on both nodes once', async () => {
    const client = await subscriber(a, ['idem:c']);
    try {
      const body = { channel: 'idem:c', event: 'e', data: 1 };
      const replies = await Promise.all(
        [a, b, a, b].map((n) => postJson(`${n.url}/api/push`, body, { 'idempotency-key': 'c-1' })),
      );
      expect(replies.map((r) => r.status)).toEqual([200, 200, 200, 200]);
      expect(new Set(replies.map((r) => r.body.id)).size).toBe(1);
      await expectExactly(a, client, 'idem:c', 1);
    } finally {
      client.close();
    }
  });

  it('keeps Idempotency-Keys apart per API key across nodes', async () => {
    const body = { channel: 'idem:y', event: 'e', data: 1 };
    const first = await postJson(`${a.url}/api/push`, body, { 'idempotency-key': 'same' });
    const other = await postJson(`${b.url}/api/push`, body, {
      'idempotency-key': 'same',
      authorization: `Bearer ${OTHER_KEY}`,
    });
    expect([first.status, other.status]).toEqual([200, 200]);
    expect(other.body.id).not.toBe(first.body.id);
  });

  it('refuses an invalid Idempotency-Key with 422', async () => {
    for (const key of ['k'.repeat(256), 'with space']) {
      const res = await postJson(
        `${a.url}/api/push`,
        { channel: 'idem:z', event: 'e', data: 1 },
        { 'idempotency-key': key },
      );
      expect({ status: res.status, code: res.body.code }).toEqual({
        status: 422,
        code: 'invalid_push',
      });
    }
  });

  it('replays a batch across nodes', async () => {
    const pushes = [
      { channel: 'idem:b', event: 'e', data: 1 },
      { channel: 'bad channel', event: 'e', data: 1 },
    ];
    const first = await postJson(
      `${a.url}/api/push/batch`,
      { pushes },
      { 'idempotency-key': 'b1' },
    );
    const again = await postJson(
      `${b.url}/api/push/batch`,
      { pushes },
      { 'idempotency-key': 'b1' },
    );
    expect(first.status).toBe(200);
    expect(again.body).toEqual(first.body);
    expect((first.body.results as Array<Record<string, unknown>>)[1]).toMatchObject({
      code: 'invalid_push',
    });
  });

  it('publishes a batch with one script call, in order, to sockets on the other node', async () => {
    const client = await subscriber(b, ['many:1']);
    const admin = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
    await admin.connect();
    // Scripts Redis ran: the rate limit's and the publish script (commands inside a script are
    // counted under their own names).
    const scriptCalls = async (): Promise<number> => {
      const info = await admin.info('commandstats');
      let calls = 0;
      for (const m of info.matchAll(/^cmdstat_(?:eval|evalsha):calls=(\d+)/gm))
        calls += Number(m[1]);
      return calls;
    };
    try {
      const pushes = Array.from({ length: 50 }, (_, i) => ({
        channel: 'many:1',
        event: 'e',
        data: i,
      }));
      const before = await scriptCalls();
      const res = await postJson(`${a.url}/api/push/batch`, { pushes });
      expect(res.status).toBe(200);
      expect(
        (res.body.results as unknown[]).every(
          (r) => typeof (r as { id?: unknown }).id === 'string',
        ),
      ).toBe(true);
      // Three for the rate limit (a token up front, given back, fifty taken) and one publish for
      // the fifty pushes; one publish per push made it fifty-three.
      expect(await scriptCalls()).toBeLessThanOrEqual(before + 6);
      await client.waitFor(50);
      expect(client.messages.map((m) => m.data)).toEqual(pushes.map((p) => p.data));
      await expectExactly(b, client, 'many:1', 50);
    } finally {
      admin.disconnect();
      client.close();
    }
  });

  it('answers 503 when the bounded in-flight buffer is full (overloaded), nothing pushed', async () => {
    const small = await startNode({ redisUrl: redis.url, maxInflight: 1 });
    const client = await subscriber(a, ['busy:1']);
    try {
      const url = `${small.url}/api/push`;
      await pauseRedis(redis.url, 500);
      const replies = await Promise.all([
        postJson(url, { channel: 'busy:1', event: 'e', data: 1 }),
        postJson(url, { channel: 'busy:1', event: 'e', data: 2 }),
      ]);
      const ok = replies.filter((r) => r.status === 200);
      const refused = replies.filter((r) => r.status !== 200);
      expect(ok).toHaveLength(1);
      expect(refused).toHaveLength(1);
      expectUnavailable(refused[0]!);
      // Only the accepted one is delivered.
      await client.waitFor(1);
      expect(client.messages[0]).toMatchObject({ id: ok[0]!.body.id });
      await expectExactly(a, client, 'busy:1', 1);
    } finally {
      client.close();
      await small.stop();
    }
  });

  it('drains: pushes in flight and inside the delay are kept, a push completed after it gets 503', async () => {
    const arrivals: Array<() => void> = [];
    const arrived = (n: number): Promise<void> =>
      new Promise<void>((r) => {
        arrivals[n] = r;
      });
    let seen = 0;
    const leaving = await startNode(
      { redisUrl: redis.url, shutdown: { delayMs: 200 } },
      { apiRequested: () => arrivals[seen++]?.() },
    );
    const client = await subscriber(a, ['drain:1']);
    let stopping: Promise<unknown> | undefined;
    let slow: Socket | undefined;
    const late: Socket[] = [];
    try {
      // 0. Requests whose headers are still on their way when the drain starts: a push, and a
      // Socket.IO WebSocket upgrade to the direct endpoint (written first: read long before the
      // node stops listening, so the node holds them as requests begun, not idle connections).
      const lateBody = JSON.stringify({ channel: 'drain:1', event: 'e', data: 'late' });
      const [latePush, lateUpgrade] = [0, 1].map(() => {
        const socket = connect(leaving.port, '127.0.0.1');
        late.push(socket);
        return { socket, reply: readHttpReply(socket) };
      });
      latePush!.socket.write(`POST /api/push HTTP/1.1\r\nHost: x\r\n`);
      lateUpgrade!.socket.write(
        'GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n' +
          'Connection: Upgrade\r\nUpgrade: websocket\r\n',
      );

      // 1. A request whose body is still on its way when the drain starts.
      const slowArrived = arrived(0);
      const body = JSON.stringify({ channel: 'drain:1', event: 'e', data: 'slow' });
      slow = connect(leaving.port, '127.0.0.1');
      const slowReply = readHttpReply(slow);
      slow.write(
        `POST /api/push HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${API_KEY}\r\n` +
          `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n` +
          body.slice(0, 10),
      );
      await slowArrived;

      // 2. A push in flight (Redis paused) when the drain starts.
      // Under the 1 s publish timeout, long enough to cover the 200 ms delay.
      await pauseRedis(redis.url, 700);
      const inflightArrived = arrived(1);
      const inflight = postJson(`${leaving.url}/api/push`, {
        channel: 'drain:1',
        event: 'e',
        data: 'inflight',
      });
      // Start the shutdown once the push is in the pipeline, blocked on the paused Redis: the
      // node's own gauge says so.
      await inflightArrived;
      await until(
        async () => (await inflightPushes(leaving.url)) === 1,
        2000,
        'the push in flight',
      );
      stopping = leaving.server.stop();

      // 3. Inside the delay: not ready, but still serving.
      expect((await getJson(`${leaving.url}/readyz`)).status).toBe(503);
      const during = postJson(`${leaving.url}/api/push`, {
        channel: 'drain:1',
        event: 'e',
        data: 'during',
      });

      // 4. Past the delay the node stops listening...
      await until(
        async () => !(await canConnect(leaving.port)),
        2000,
        'the node to stop listening',
      );
      // ... and the request taken before, completed now, is refused: nothing pushed.
      slow.write(body.slice(10));
      const refused = await slowReply;
      expect(refused.status).toBe(503);
      expect(JSON.parse(refused.body)).toMatchObject({ code: 'unavailable' });
      expect(refused.headers['retry-after']).toBe('1');
      expect(refused.headers.connection).toBe('close');
      // ... as are the requests whose headers end only now: the push with 503 `draining` before
      // any other check (it has no API key: 401 otherwise), the WebSocket upgrade with 400
      // `draining` (engine.io's answer, so clients try another node).
      latePush!.socket.write(
        `Content-Type: application/json\r\n` +
          `Content-Length: ${Buffer.byteLength(lateBody)}\r\n\r\n${lateBody}`,
      );
      const lateRefused = await latePush!.reply;
      expect(lateRefused.status).toBe(503);
      expect(JSON.parse(lateRefused.body)).toMatchObject({ code: 'unavailable' });
      expect(lateRefused.headers['retry-after']).toBe('1');
      expect(lateRefused.headers.connection).toBe('close');
      lateUpgrade!.socket.write(
        'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      );
      const upgradeRefused = await lateUpgrade!.reply;
      expect(upgradeRefused.status).toBe(400);
      expect(upgradeRefused.body).toBe('draining');

      // 5. What was taken is answered 200 once Redis is back, and the drain waits for it.
      const kept = await inflight;
      expect(kept.status).toBe(200);
      // Answered after the node stopped taking traffic: the client is told to reconnect elsewhere.
      expect(kept.headers.get('connection')).toBe('close');
      expect((await during).status).toBe(200);
      await expect(stopping).resolves.toEqual({ drained: true, inflightLeft: 0 });
      await client.waitFor(2);
      expect(client.messages.map((m) => m.data)).toEqual(['inflight', 'during']);
      await expectExactly(a, client, 'drain:1', 2);
    } finally {
      slow?.destroy();
      for (const socket of late) socket.destroy();
      client.close();
      await (stopping ?? leaving.stop());
    }
  });

  // A publish that times out (redis.commandTimeoutMs) is answered 503 "nothing was pushed"; the
  // EVALSHA may still be queued in Redis, so the script carries a deadline and does nothing once
  // it has passed (cluster/scripts.ts).
  it('answers 503 when a Redis command times out, and the push does not happen later', async () => {
    const impatient = await startNode({ redisUrl: redis.url, redis: { commandTimeoutMs: 100 } });
    const client = await subscriber(a, ['late:1']);
    try {
      await pauseRedis(redis.url, 400);
      const res = await postJson(`${impatient.url}/api/push`, {
        channel: 'late:1',
        event: 'late',
        data: 1,
      });
      expectUnavailable(res);
      // docs/protocol.md: a 503 means nothing was pushed, so no delivery may follow once Redis resumes.
      await expectExactly(a, client, 'late:1', 0);
    } finally {
      client.close();
      await impatient.stop();
    }
  });
});

describe('HTTP push API over Redis: Redis goes away and comes back', () => {
  const cluster = useRedisCluster();
  let redis: RedisFixture;
  let node: TestNode;
  beforeAll(() => {
    ({ redis, node } = cluster);
  });

  it('answers 503 while Redis is down, /readyz 503, and works again after a restart', async () => {
    const client = await subscriber(node, ['outage:1']);
    try {
      const push = `${node.url}/api/push`;
      const body = { channel: 'outage:1', event: 'e', data: 'before' };
      expect((await postJson(push, body)).status).toBe(200);
      await client.waitFor(1);

      await redis.kill();
      const down = await until(
        async () => {
          const r = await postJson(push, { ...body, data: 'during' });
          return r.status !== 200 && r;
        },
        5000,
        'a push refused while Redis is down',
      );
      expectUnavailable(down);
      expect(await getJson(`${node.url}/readyz`)).toEqual({
        status: 503,
        body: { status: 'bus_unavailable' },
      });
      expectUnavailable(await postJson(push, body, { 'idempotency-key': 'during-outage' }));
      expectUnavailable(await postJson(`${node.url}/api/push/batch`, { pushes: [body, body] }));
      // Liveness is not readiness: the process still serves.
      expect((await fetch(`${node.url}/healthz`)).status).toBe(200);

      await redis.restart();
      const back = await until(
        async () => {
          const r = await postJson(push, { ...body, data: 'after' });
          return r.status === 200 && r;
        },
        10_000,
        'a push taken after the restart',
      );
      expect(back.body).toMatchObject({ channel: ['outage:1'], data: 'after' });
      expect((await getJson(`${node.url}/readyz`)).status).toBe(200);
      // The key refused during the outage was not kept: it pushes now.
      const retried = await postJson(
        push,
        { ...body, data: 'retried' },
        {
          'idempotency-key': 'during-outage',
        },
      );
      expect(retried.status).toBe(200);
      expect(retried.body.id).not.toBe(back.body.id);
      // The socket that joined before the outage gets live pushes again (see the test below for
      // the ones made right after the restart), and never one that was refused.
      await until(
        async () => {
          const r = await postJson(push, { ...body, data: 'live' });
          expect(r.status).toBe(200);
          return client.waitFor(client.messages.length + 1, 500).then(
            () => true,
            () => false,
          );
        },
        10_000,
        'a live push to reach the socket',
      );
      expect(client.messages[0]!.data).toBe('before');
      expect(client.messages.filter((m) => m.data === 'during')).toEqual([]);
    } finally {
      client.close();
    }
  });
});

// After a Redis restart the publisher connection can be ready before the subscriber connection
// has reconnected and subscribed every local room again; pushes must be refused (503) until then,
// or one answered 200 in that window would never reach the sockets already joined here. The test
// pushes without pause from inside the outage, through the restart, until the node is ready again:
// every moment of the window gets pushes.
describe('HTTP push API over Redis: every push answered 200 after a restart is delivered', () => {
  it('delivers to a socket joined before the outage every push answered 200 after it', async () => {
    await using redis = await startRedis();
    // Pushes back to back: the per-key push limit out of the way.
    const node = await startNode({
      redisUrl: redis.url,
      limits: { pushesPerSecond: 1e6, pushBurst: 1e6 },
    });
    const client = await subscriber(node, ['outage:2']);
    const readyz = async (): Promise<number> => (await fetch(`${node.url}/readyz`)).status;
    let pushing = true;
    let pusher: Promise<void> | undefined;
    try {
      await redis.kill();
      await until(async () => (await readyz()) === 503, 5000, 'the node to see the outage');
      const answered: number[] = [];
      const refused: Reply[] = [];
      pusher = (async () => {
        for (let i = 0; pushing; i++) {
          const r = await postJson(`${node.url}/api/push`, {
            channel: 'outage:2',
            event: 'e',
            data: i,
          });
          if (r.status === 200) answered.push(i);
          else refused.push(r);
        }
      })();
      await redis.restart();
      await until(async () => (await readyz()) === 200, 10_000, 'the node to be ready again');
      await until(() => answered.length >= 10, 5000, 'pushes taken after the restart');
      pushing = false;
      await pusher;
      // Pushes began inside the outage: the first ones were refused, as unavailable.
      expect(refused.length).toBeGreaterThan(0);
      for (const r of refused) expectUnavailable(r);
      await expectExactly(node, client, 'outage:2', answered.length);
      expect(client.messages.slice(0, -1).map((m) => m.data)).toEqual(answered);
    } finally {
      pushing = false;
      await pusher?.catch(() => undefined);
      client.close();
      await node.stop();
    }
  });
});

/** Reads one HTTP/1.1 reply (status, lower-cased headers, body by Content-Length) from a socket. */
function readHttpReply(
  socket: Socket,
): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  return new Promise((resolve, reject) => {
    let buffer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      const end = buffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      const [statusLine, ...lines] = buffer.slice(0, end).split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      const body = buffer.slice(end + 4);
      if (Buffer.byteLength(body) < Number(headers['content-length'] ?? 0)) return;
      resolve({ status: Number(statusLine!.split(' ')[1]), headers, body });
    });
    socket.once('error', reject);
    socket.once('close', () => reject(new Error(`connection closed; got: ${buffer}`)));
  });
}
