import type { Socket as NetSocket } from 'node:net';
import type { Socket } from 'socket.io';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { roomOf } from '../../src/delivery/names.js';
import { parseOffset } from '../../src/delivery/offset.js';
import { countWritesTo } from '../support/probes.js';
import { startRedis, type RedisFixture } from '../support/redis.js';
import {
  connectClient,
  postJson,
  startNode,
  token,
  type TestClient,
  type TestNode,
} from '../support/nodes.js';

/**
 * Broadcasts written as one pre-built frame straight to each WebSocket (realtime/direct-frames.ts)
 * and broadcasts that go through Socket.IO's own path (long-polling, an upgrade in progress, a
 * write still in flight) mix on one node: every client still gets every push once, in offset order.
 */
describe('direct frame writes keep every client whole and in order', () => {
  const PUSHES = 300;
  let redis: RedisFixture;
  const nodes: TestNode[] = [];
  beforeAll(async () => {
    redis = await startRedis();
    // The first node hands WebSocket clients to engine.io (these are its frames); the second
    // serves them on its own endpoint.
    nodes.push(
      await startNode({ redisUrl: redis.url, socketDirect: false }),
      await startNode({ redisUrl: redis.url }),
    );
  });
  afterAll(async () => {
    await Promise.allSettled(nodes.map((n) => n.stop()));
    await redis?.stop();
  });

  it('WebSocket, long-polling and upgrading clients under a burst of concurrent pushes', async () => {
    const channel = 'frames:order';
    const jwt = await token({ sub: 'u', channels: [channel] });
    const kinds: Array<[string, string[]]> = [
      ...Array<[string, string[]]>(10).fill(['websocket', ['websocket']]),
      ...Array<[string, string[]]>(3).fill(['polling', ['polling']]),
      ...Array<[string, string[]]>(3).fill(['upgrading', ['polling', 'websocket']]),
    ];
    const clients: TestClient[] = await Promise.all(
      kinds.map(([, transports]) => connectClient(nodes[0]!.url, { token: jwt }, { transports })),
    );
    try {
      await Promise.all(clients.map((c) => c.join(channel)));
      // Eight publishers at once through both nodes: the receiving node's writes pile up, so some
      // frames find a socket with a write in flight and take Socket.IO's path behind it.
      let next = 0;
      await Promise.all(
        [...Array(8).keys()].map(async (w) => {
          while (next < PUSHES) {
            const i = next++;
            const res = await postJson(`${nodes[w % 2]!.url}/api/push`, {
              channel,
              event: 'e',
              data: { i, pad: 'x'.repeat(200) },
            });
            expect(res.status).toBe(200);
          }
        }),
      );
      for (const [k, client] of clients.entries()) {
        const got = await client.waitFor(PUSHES, 15_000);
        expect(got, kinds[k]![0]).toHaveLength(PUSHES);
        const positions = got.map((m) => parseOffset(m.offset)!.n);
        expect(new Set(positions).size, kinds[k]![0]).toBe(PUSHES);
        expect(positions, kinds[k]![0]).toEqual([...positions].sort((a, b) => a - b));
        expect(new Set(got.map((m) => m.id)).size).toBe(PUSHES);
      }
      expect(clients.at(-1)!.socket.io.engine.transport.name).toBe('websocket');
    } finally {
      for (const c of clients) c.close();
    }
  });

  it('a frame never overtakes what Socket.IO still holds for the socket', async () => {
    const channel = 'frames:behind';
    const node = nodes[0]!;
    const { client, socket } = await joinedClient(node, channel);
    try {
      // As while a write is in flight: engine.io queues what the socket is sent (a replayed
      // history message, here) until its transport is writable again.
      const conn = socket.conn as unknown as { transport: { writable: boolean }; flush(): void };
      conn.transport.writable = false;
      socket.emit('msg', { channel, event: 'queued', data: 0, id: 'queued', ts: Date.now() });
      const res = await postJson(`${nodes[1]!.url}/api/push`, { channel, event: 'live', data: 1 });
      expect(res.status).toBe(200);
      // The live push reached the node meanwhile; nothing may have been written ahead of the queue.
      await new Promise((r) => setTimeout(r, 200));
      expect(client.messages).toHaveLength(0);
      conn.transport.writable = true;
      conn.flush();
      const got = await client.waitFor(2);
      expect(got.map((m) => m.event)).toEqual(['queued', 'live']);
    } finally {
      client.close();
    }
  });

  it('frames of one turn leave a socket in one write, whole and in order', async () => {
    const channel = 'frames:turn';
    // One node on its own: a batch's pushes reach its sockets within the request's turn (on
    // Redis they come back in as many reads of the subscriber as Redis makes).
    const node = await startNode({ socketDirect: false });
    nodes.push(node);
    const { client, socket } = await joinedClient(node, channel);
    // The system writes of the TCP socket under the WebSocket (one `_write` per chunk, or one
    // `_writev` for all the chunks held while it was corked).
    const tcp = (socket.conn as unknown as { transport: { socket: { _socket: NetSocket } } })
      .transport.socket._socket;
    const writes = countWritesTo(tcp.remotePort!);
    try {
      // One batch request: its pushes are published (and their frames written) within one turn
      // of the node's event loop.
      const res = await postJson(`${node.url}/api/push/batch`, {
        pushes: [...Array(20).keys()].map((i) => ({ channel, event: 'e', data: i })),
      });
      expect(res.status).toBe(200);
      const got = await client.waitFor(20);
      expect(got.map((m) => m.data)).toEqual([...Array(20).keys()]);
      // All twenty frames in one system write (one `writev`), not twenty.
      expect(writes.chunks).toEqual([20]);
    } finally {
      writes.stop();
      client.close();
    }
  });
});

/** A client joined to `channel` on `node`, and its socket on the node. */
async function joinedClient(
  node: TestNode,
  channel: string,
): Promise<{ client: TestClient; socket: Socket }> {
  const client = await connectClient(node.url, {
    token: await token({ sub: 'u', channels: [channel] }),
  });
  await client.join(channel);
  const socket = [...node.server.io.of('/').sockets.values()].find((s) =>
    s.rooms.has(roomOf(channel)),
  );
  if (socket) return { client, socket };
  client.close();
  throw new Error(`no socket in ${channel} on the node`);
}
