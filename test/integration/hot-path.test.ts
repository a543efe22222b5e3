import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { WireSocket } from '../../src/realtime/wire-socket.js';
import { captureLog } from '../support/log-capture.js';
import { metricValue } from '../support/probes.js';
import { useRedisCluster } from '../support/cluster.js';
import {
  connectClient,
  postJson,
  startNode,
  token,
  type TestClient,
  type TestNode,
} from '../support/nodes.js';

/**
 * The broadcast hot path (issue: "per-push work once, only the unavoidable write per socket"):
 * a push to a room of N WebSocket sockets on a node is encoded once, framed once, and every
 * socket's `ws` sender is handed that very same frame buffer (src/realtime/direct-frames.ts):
 * no per-socket serialization, and none of Socket.IO's per-socket packet path.
 */
async function measure(
  node: TestNode,
  publisher: TestNode,
  clients: TestClient[],
  channel: string,
) {
  const adapter = node.server.io.of('/').adapter as unknown as {
    _encode(packet: unknown, opts: unknown): unknown;
  };
  // The broadcasts the node makes (each asks for its packet's encoding once; Socket.IO's
  // encoder itself is counted by socketIoEncodes).
  const encode = adapter._encode.bind(adapter);
  let broadcasts = 0;
  adapter._encode = (packet, opts) => {
    broadcasts += 1;
    return encode(packet, opts);
  };
  const frames = new Set<unknown>();
  let frameWrites = 0;
  let engineWrites = 0;
  for (const socket of node.server.io.of('/').sockets.values()) {
    const client = socket.client as unknown as {
      writeToEngine(packets: unknown, opts: unknown): void;
    };
    const write = client.writeToEngine.bind(client);
    client.writeToEngine = (packets, opts) => {
      engineWrites += 1;
      write(packets, opts);
    };
    const conn = socket.conn as unknown as {
      transport: { socket: { _sender: { sendFrame(list: Buffer[], cb?: () => void): void } } };
    };
    const sender = conn.transport.socket._sender;
    const sendFrame = sender.sendFrame.bind(sender);
    sender.sendFrame = (list, cb) => {
      frameWrites += 1;
      for (const buffer of list) frames.add(buffer);
      sendFrame(list, cb);
    };
  }
  const serialized = await socketIoEncodes(node, () => pushOnce(publisher, channel, clients));
  return { broadcasts, serialized, frameWrites, distinctFrames: frames.size, engineWrites };
}

/** Counts the packets `node`'s Socket.IO encoder serializes while `during` runs. */
async function socketIoEncodes(node: TestNode, during: () => Promise<void>): Promise<number> {
  const { encoder } = node.server.io.of('/').adapter as unknown as {
    encoder: { encode(packet: unknown): unknown };
  };
  const spy = vi.spyOn(encoder, 'encode');
  try {
    await during();
    return spy.mock.calls.length;
  } finally {
    spy.mockRestore();
  }
}

/** One push of ~1 KB on `channel` through `publisher`, once every client has received it. */
async function pushOnce(publisher: TestNode, channel: string, clients: TestClient[]) {
  const res = await postJson(`${publisher.url}/api/push`, {
    channel,
    event: 'e',
    data: { big: 'x'.repeat(1000) },
  });
  expect(res.status).toBe(200);
  await Promise.all(clients.map((c) => c.waitFor(1)));
}

/** `n` socket.io-clients of `node`, each joined to `channel`. */
async function joinClients(node: TestNode, channel: string, n: number): Promise<TestClient[]> {
  const jwt = await token({ sub: 'u', channels: [channel] });
  const clients = await Promise.all(
    [...Array(n).keys()].map(() => connectClient(node.url, { token: jwt })),
  );
  await Promise.all(clients.map((c) => c.join(channel)));
  return clients;
}

/**
 * The nodes each describe runs on: one in memory mode, then two sharing a Redis (the second
 * publishes, the first receives); `config` for all three.
 */
function useNodes(config: { socketDirect?: boolean } = {}): TestNode[] {
  const cluster = useRedisCluster({ nodes: 2, config });
  const nodes: TestNode[] = [];
  let single: TestNode | undefined;
  // After the cluster's own beforeAll (registered first).
  beforeAll(async () => {
    single = await startNode(config);
    nodes.push(single, ...cluster.nodes);
  });
  afterAll(async () => {
    await single?.stop();
  });
  return nodes;
}

describe('broadcast hot path', () => {
  const N = 50;
  // engine.io's sockets: WebSocket clients are handed to engine.io, not the direct endpoint.
  const nodes = useNodes({ socketDirect: false });

  const join = (node: TestNode, channel: string) => joinClients(node, channel, N);

  it('memory: one encode per push, the same frame written to every socket', async () => {
    const clients = await join(nodes[0]!, 'hot:mem');
    try {
      expect(await measure(nodes[0]!, nodes[0]!, clients, 'hot:mem')).toEqual({
        broadcasts: 1,
        serialized: 1,
        frameWrites: N,
        distinctFrames: 1,
        engineWrites: 0,
      });
    } finally {
      for (const c of clients) c.close();
    }
  });

  it('redis: one encode per push on the receiving node, whichever node published', async () => {
    const clients = await join(nodes[1]!, 'hot:redis');
    try {
      expect(await measure(nodes[1]!, nodes[2]!, clients, 'hot:redis')).toEqual({
        broadcasts: 1,
        serialized: 1,
        frameWrites: N,
        distinctFrames: 1,
        engineWrites: 0,
      });
    } finally {
      for (const c of clients) c.close();
    }
  });

  it('counting, metrics and logs do one thing per push, not one per socket', async () => {
    // Every log line a node writes, down to debug, and the `delivered` hook.
    const log = captureLog('debug');
    const delivered: Array<{ channel: string; count: number }> = [];
    const node = await startNode(
      {},
      {
        delivered: (_push, ctx) => void delivered.push({ channel: ctx.channel, count: ctx.count }),
      },
      { logger: log.logger },
    );
    nodes.push(node);
    const clients = await join(node, 'hot:count');
    try {
      const before = await metricValue(node.url, 'pushcast_pushes_delivered_total');
      const lines = log.lines.length;
      await measure(node, node, clients, 'hot:count');
      // One `delivered` call with the count, the counter moved by N, and the log lines of the
      // request (an access line or so), none per socket.
      expect(delivered).toEqual([{ channel: 'hot:count', count: N }]);
      expect((await metricValue(node.url, 'pushcast_pushes_delivered_total')) - before).toBe(N);
      expect(log.lines.length - lines).toBeLessThan(5);
    } finally {
      for (const c of clients) c.close();
    }
  });
});

/**
 * The same promise on the direct WebSocket endpoint (src/realtime/socketio-endpoint.ts), where
 * the connection hub encodes each message once per node (one whole WebSocket frame) and hands that
 * very buffer to every connection's WebSocket (src/realtime/wire-socket.ts).
 */
describe('broadcast hot path, direct WebSocket endpoint', () => {
  const N = 50;
  const nodes = useNodes();

  /** Every whole frame any direct WebSocket of this process is handed while `during` runs. */
  async function framesWritten(during: () => Promise<void>) {
    const spy = vi.spyOn(WireSocket.prototype, 'writeFrame');
    try {
      await during();
      return spy.mock.calls.map(([frame]) => frame);
    } finally {
      spy.mockRestore();
    }
  }

  async function pushTo(node: TestNode, publisher: TestNode, channel: string) {
    const clients = await joinClients(node, channel, N);
    try {
      // Every client is on the direct endpoint, none on engine.io.
      expect(node.server.io.of('/').sockets.size).toBe(0);
      let written: unknown[] = [];
      const serialized = await socketIoEncodes(node, async () => {
        written = await framesWritten(() => pushOnce(publisher, channel, clients));
      });
      // One write per socket, all of the same buffer: encoded and framed once, by the hub; no
      // engine.io socket in the room, so Socket.IO's own encoding is never made.
      return { frameWrites: written.length, distinctFrames: new Set(written).size, serialized };
    } finally {
      for (const c of clients) c.close();
    }
  }

  it('memory: the same frame buffer written to every socket', async () => {
    expect(await pushTo(nodes[0]!, nodes[0]!, 'hot:direct')).toEqual({
      frameWrites: N,
      distinctFrames: 1,
      serialized: 0,
    });
  });

  it('a room with one long-polling socket among them: encoded for Socket.IO once, and whole', async () => {
    const channel = 'hot:mixed';
    const node = nodes[0]!;
    const clients = await joinClients(node, channel, N);
    const polling = await connectClient(
      node.url,
      { token: await token({ sub: 'u', channels: [channel] }) },
      { transports: ['polling'] },
    );
    try {
      expect(await polling.join(channel)).toMatchObject({ ok: true });
      expect(node.server.io.of('/').sockets.size).toBe(1);
      const serialized = await socketIoEncodes(node, () =>
        pushOnce(node, channel, [...clients, polling]),
      );
      expect(serialized).toBe(1);
      expect(polling.messages).toHaveLength(1);
      expect(polling.messages[0]).toMatchObject({ channel, data: { big: 'x'.repeat(1000) } });
    } finally {
      polling.close();
      for (const c of clients) c.close();
    }
  });

  it('redis: the same frame buffer written to every socket of the receiving node', async () => {
    expect(await pushTo(nodes[1]!, nodes[2]!, 'hot:direct-redis')).toEqual({
      frameWrites: N,
      distinctFrames: 1,
      serialized: 0,
    });
  });
});
