import { describe, expect, it } from 'vitest';
import { io as connectSocket, type Socket } from 'socket.io-client';
import { createClient, type PushMessage } from '../../src/client/index.js';
import type { ConfigInput } from '../../src/config/schema.js';
import type { ChannelMessage } from '../../src/delivery/message.js';
import { unsentBytes } from '../../src/realtime/slow-consumers.js';
import { createPushServer, type PushServer } from '../../src/server.js';
import { until } from '../support/assertions.js';
import {
  API_KEY,
  JWT_SECRET,
  connectClient,
  postJson,
  token,
  type TestClient,
} from '../support/nodes.js';
import { captureLog } from '../support/log-capture.js';

/**
 * Slow consumers (README "Operating it"): a socket whose unsent output passes
 * `limits.maxSocketBufferKb` is disconnected alone, at the transport level, and comes back through
 * recovery; the others keep receiving.
 */

const LIMIT_KB = 256;
/** Bulky pushes: ~60 KB of `data` each (the default data limit is 64 KiB). */
const PAD = 'x'.repeat(60_000);
/**
 * A bound on the pushes of one loop. The kernel takes the first few MB a stalled reader leaves
 * unread (the socket buffers at both ends of the loopback connection): only what is left in user
 * space counts against the limit, ~70 pushes here; the loops stop as soon as it passes.
 */
const MAX_PUSHES = 400;
const LIMIT =
  LIMIT_KB *
  1024; /** Pushes the publisher may be ahead of the clients that read (~1.2 MB, under what TCP holds). */
const AHEAD = 20;

interface Node {
  server: PushServer;
  url: string;
  /** The node's log lines at warn and above. */
  warnings: Array<Record<string, unknown>>;
  stop(): Promise<void>;
}

async function startNode(config: ConfigInput = {}): Promise<Node> {
  const { logger, lines: warnings } = captureLog();
  const server = createPushServer(
    {
      env: 'test',
      host: '127.0.0.1',
      port: 0,
      apiKeys: [{ key: API_KEY, id: 'test' }],
      jwt: { secret: JWT_SECRET },
      // Room for a thousand sockets from one address at once, and for every push to be recovered.
      history: { size: 2 * MAX_PUSHES },
      limits: {
        maxSocketBufferKb: LIMIT_KB,
        maxConnections: 10_000,
        maxConnectionsPerUser: 10_000,
        connectRatePerSecond: 100_000,
      },
      // engine.io's sockets (test/integration/socketio-direct.test.ts has the direct endpoint's).
      socketDirect: false,
      ...config,
    },
    { logger },
  );
  const { port } = await server.start();
  // Socket.IO's heartbeat would end a stalled connection too (within 45 s): stretched here, so that
  // only the buffer limit can, however long a loaded host takes to feed 1,000 clients.
  server.io.engine.opts.pingInterval = 10 * 60_000;
  server.io.engine.opts.pingTimeout = 10 * 60_000;
  return {
    server,
    url: `http://127.0.0.1:${port}`,
    warnings,
    stop: async () => void (await server.stop()),
  };
}

/** The `ws` WebSocket under a socket.io-client socket (Node): pausing it stops reading TCP. */
function wsOf(socket: Socket): { pause(): void; resume(): void } {
  const transport = (
    socket.io.engine as unknown as {
      transport: { name: string; ws: { pause(): void; resume(): void } };
    }
  ).transport;
  expect(transport.name).toBe('websocket');
  return transport.ws;
}

/** The node's side of a client's socket. */
function serverSocket(server: PushServer, id: string | undefined) {
  const socket = server.io.of('/').sockets.get(id ?? '');
  expect(socket).toBeDefined();
  return socket!;
}

async function push(node: Node, channel: string, event: string, data: unknown): Promise<string> {
  const res = await postJson(`${node.url}/api/push`, { channel, event, data });
  expect(res.status).toBe(200);
  return res.body.id as string;
}

/**
 * Pushes bulky messages on `channel` until `done()` holds; returns how many were pushed. With
 * `received` (the fewest pushes any reading client has got so far), the publisher stays at most
 * `AHEAD` pushes ahead of the clients that read: they keep up, whatever the host.
 */
async function pushUntil(
  node: Node,
  channel: string,
  done: () => boolean,
  received?: () => number,
): Promise<number> {
  let pushed = 0;
  while (!done()) {
    if (pushed >= MAX_PUSHES) throw new Error(`still not done after ${MAX_PUSHES} pushes`);
    if (received)
      await until(() => received() >= pushed - AHEAD, 60_000, 'the reading clients to keep up');
    await push(node, channel, 'bulk', { i: pushed, pad: PAD });
    pushed += 1;
  }
  return pushed;
}

/** A socket.io-client that counts what it receives and keeps no payload. */
interface Counter {
  socket: Socket;
  /** `data.i` of the bulky pushes, in arrival order, then -1 for the sentinel. */
  seen: number[];
  disconnects: string[];
}

async function counter(url: string, jwt: string, channel: string, lags: number[]) {
  const socket = connectSocket(url, {
    auth: { token: jwt },
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
  });
  const c: Counter = { socket, seen: [], disconnects: [] };
  socket.on('msg', (m: ChannelMessage) => {
    lags.push(Date.now() - m.ts);
    c.seen.push(m.event === 'sentinel' ? -1 : (m.data as { i: number }).i);
  });
  socket.on('disconnect', (reason) => c.disconnects.push(reason));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', reject);
  });
  const ack = (await socket.timeout(10_000).emitWithAck('join', { channel })) as { ok: boolean };
  expect(ack.ok).toBe(true);
  return c;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;
}

describe('slow consumers', () => {
  it('a client that stops reading is disconnected alone, while 1,000 others receive every push, and comes back through recovery', async () => {
    const CLIENTS = 1000;
    const channel = 'slow:fanout';
    const node = await startNode();
    const fast: Counter[] = [];
    const lags: number[] = [];
    const jwt = await token({ sub: 'fast', channels: [channel] });
    const slowJwt = await token({ sub: 'slow', channels: [channel] });
    let slow: TestClient | undefined;
    let back: TestClient | undefined;
    try {
      for (let i = 0; i < CLIENTS; i += 100)
        fast.push(
          ...(await Promise.all(
            [...Array(Math.min(100, CLIENTS - i)).keys()].map(() =>
              counter(node.url, jwt, channel, lags),
            ),
          )),
        );
      // The slow one: a plain socket.io-client (its own reconnection off: the test brings it back).
      slow = await connectClient(node.url, { token: slowJwt });
      const joined = await slow.join(channel);
      expect(joined).toMatchObject({ ok: true });
      const slowId = slow.socket.id;
      const slowSide = serverSocket(node.server, slowId);
      const reasons: string[] = [];
      slowSide.on('disconnect', (reason) => reasons.push(reason));
      expect(node.server.io.of('/').sockets.size).toBe(CLIENTS + 1);

      // It stops reading; bulky pushes go on until its unsent output passes the limit, and the
      // node cuts it off.
      wsOf(slow.socket).pause();
      const t0 = Date.now();
      const pushed = await pushUntil(
        node,
        channel,
        () => reasons.length > 0 || unsentBytes(slowSide.conn) > LIMIT,
        () => Math.min(...fast.map((c) => c.seen.length)),
      );
      await until(() => reasons.length > 0, 5_000, 'the node to cut the slow socket off');
      const sentinel = await push(node, channel, 'sentinel', 0);
      const expected = [...[...Array(pushed).keys()], -1];

      // The others get every push, the sentinel last, while the slow client is still stalled.
      await until(
        () => fast.every((c) => c.seen.length === pushed + 1),
        120_000,
        'every push at the 1,000 clients',
      );
      const deliveredMs = Date.now() - t0;
      expect(slow.messages).toHaveLength(0);
      for (const c of fast) {
        expect(c.seen).toEqual(expected);
        expect(c.disconnects).toEqual([]);
      }
      expect(node.server.io.of('/').sockets.size).toBe(CLIENTS);

      // Disconnected alone, at the transport level, said once in the logs (no payload).
      expect(reasons).toEqual(['forced close']);
      const warned = node.warnings.filter((l) => l.conn === slowId);
      expect(warned).toHaveLength(1);
      expect(warned[0]).toMatchObject({ level: 40, transport: 'websocket', limit: LIMIT });
      expect(warned[0]!.bytes).toBeGreaterThan(LIMIT);
      expect(JSON.stringify(node.warnings)).not.toContain('xxxxxxxx');
      const metrics = await (await fetch(`${node.url}/metrics`)).text();
      expect(metrics).toMatch(/^pushcast_slow_consumers_disconnected_total 1$/m);

      const sorted = [...lags].sort((a, b) => a - b);
      console.info(
        `slow consumer cut off after ${pushed} pushes of 60 KB; ${CLIENTS} others got all ` +
          `${pushed + 1} in ${deliveredMs} ms; delivery lag p50 ${percentile(sorted, 50)} ms, ` +
          `p99 ${percentile(sorted, 99)} ms, max ${sorted.at(-1)} ms (information only)`,
      );

      // It reads again: what the kernel had taken, then the close.
      wsOf(slow.socket).resume();
      await until(() => !slow!.socket.connected, 15_000, 'the slow client to see the close');
      const read = slow.messages.length;
      expect(read).toBeLessThan(pushed);
      expect(slow.messages.map((m) => (m.data as { i: number }).i)).toEqual([
        ...Array(read).keys(),
      ]);

      // It comes back through recovery: a join with `since`, the last offset it saw, replays
      // exactly what it missed (what the SDK does by itself).
      const since = slow.messages.at(-1)?.offset ?? (joined.offset as string);
      back = await connectClient(node.url, { token: slowJwt });
      expect(await back.join(channel, { since })).toMatchObject({
        ok: true,
        recovered: true,
        missed: pushed + 1 - read,
      });
      await back.waitFor(pushed + 1 - read);
      const all = [...slow.messages, ...back.messages];
      expect(all.map((m) => (m.event === 'sentinel' ? -1 : (m.data as { i: number }).i))).toEqual(
        expected,
      );
      expect(all.at(-1)!.id).toBe(sentinel);

      // The node is still serving, everyone included.
      expect((await fetch(`${node.url}/healthz`)).status).toBe(200);
      await push(node, channel, 'after', { i: pushed + 1 });
      await back.waitFor(pushed + 2 - read);
      await until(
        () => fast.every((c) => c.seen.length === pushed + 2),
        30_000,
        'a push after it all',
      );
    } finally {
      slow?.close();
      back?.close();
      for (const c of fast) c.socket.close();
      await node.stop();
    }
  }, 300_000);

  it('a socket merely slow for a moment (its buffer under the limit) is not disconnected; a stalled SDK client comes back by itself', async () => {
    const node = await startNode();
    let brief: TestClient | undefined;
    let sdk: ReturnType<typeof createClient> | undefined;
    try {
      brief = await connectClient(node.url, {
        token: await token({ sub: 'brief', channels: ['slow:brief'] }),
      });
      expect(await brief.join('slow:brief')).toMatchObject({ ok: true });
      const briefDisconnects: string[] = [];
      brief.socket.on('disconnect', (reason) => briefDisconnects.push(reason));
      const briefConn = serverSocket(node.server, brief.socket.id).conn;

      // The stalled one: the pushcast SDK.
      const got: PushMessage<{ i: number }>[] = [];
      const states: string[] = [];
      const lost: unknown[] = [];
      let joins = 0;
      sdk = createClient(node.url, {
        token: await token({ sub: 'stalled', channels: ['slow:stalled'] }),
        transports: ['websocket'],
        onStateChange: (state) => states.push(state),
      });
      sdk.subscribe<{ i: number }>('slow:stalled', {
        onMessage: (m) => got.push(m),
        onJoin: () => (joins += 1),
        onLost: (info) => lost.push(info),
      });
      const sdkReasons: string[] = [];
      sdk.socket.on('disconnect', (reason) => sdkReasons.push(reason));
      await until(() => joins === 1, 10_000, 'the SDK to join');
      const stalledId = sdk.socket.id;
      const stalledSide = serverSocket(node.server, stalledId);
      const stalledGone: string[] = [];
      stalledSide.on('disconnect', (reason) => stalledGone.push(reason));

      // `brief` stops reading until the node holds some of its output, under the limit.
      wsOf(brief.socket).pause();
      const pushedBrief = await pushUntil(node, 'slow:brief', () => unsentBytes(briefConn) > 0);
      const held = unsentBytes(briefConn);
      expect(held).toBeLessThan(LIMIT);

      // Meanwhile the SDK client stops reading for good: the pass of the watch that cuts it off
      // looks at `brief` too, still behind.
      wsOf(sdk.socket).pause();
      const pushedStalled = await pushUntil(
        node,
        'slow:stalled',
        () => stalledGone.length > 0 || unsentBytes(stalledSide.conn) > LIMIT,
      );
      await until(() => stalledGone.length > 0, 5_000, 'the node to cut the stalled socket off');
      expect(stalledGone).toEqual(['forced close']);
      expect(unsentBytes(briefConn)).toBeGreaterThanOrEqual(held);
      expect(unsentBytes(briefConn)).toBeLessThan(LIMIT);
      expect(serverSocket(node.server, brief.socket.id).connected).toBe(true);

      // `brief` reads again: it gets everything on the same connection.
      wsOf(brief.socket).resume();
      await brief.waitFor(pushedBrief, 15_000);
      expect(brief.messages.map((m) => (m.data as { i: number }).i)).toEqual([
        ...Array(pushedBrief).keys(),
      ]);
      const more = await push(node, 'slow:brief', 'after', 0);
      await brief.waitFor(pushedBrief + 1);
      expect(brief.messages.at(-1)!.id).toBe(more);
      expect(briefDisconnects).toEqual([]);
      expect(node.warnings.filter((l) => l.conn === brief!.socket.id)).toEqual([]);

      // The SDK client reads again: it sees a transport close, reconnects by itself, rejoins with
      // `since` and gets every push once, in order, nothing lost.
      wsOf(sdk.socket).resume();
      await until(() => got.length === pushedStalled, 15_000, 'the SDK client to catch up');
      expect(got.map((m) => m.data.i)).toEqual([...Array(pushedStalled).keys()]);
      expect(sdkReasons).toEqual(['transport close']);
      expect(lost).toEqual([]);
      expect(joins).toBe(2);
      expect(states).toEqual(['connecting', 'connected', 'disconnected', 'connected']);
      expect(sdk.socket.id).not.toBe(stalledId);
    } finally {
      brief?.close();
      sdk?.close();
      await node.stop();
    }
  }, 60_000);
});
