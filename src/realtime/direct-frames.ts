import type { Adapter } from 'socket.io-adapter';
import { writeBuiltFrame, type WsInsides } from './ws-frames.js';

/*
 * The parts of engine.io read here are untyped or private in their typings; the version is pinned
 * in package.json (socket.io 4.8.4) and test/integration/hot-path.test.ts fails if they stop being
 * there. Any socket where one of them is missing takes Socket.IO's own path.
 */
interface EngineConn {
  readyState: string;
  upgrading?: boolean;
  writeBuffer: unknown[];
  transport: {
    name: string;
    writable: boolean;
    perMessageDeflate?: unknown;
    socket?: WsInsides;
  };
}
interface BroadcastSocket {
  conn: unknown;
}
interface Packet {
  type: number;
  id?: number;
  data?: unknown[];
}
interface PacketOptions {
  wsPreEncodedFrame?: Buffer[];
}
/** The two in-memory adapter methods hooked here (`_encode` is private in its typings). */
interface Patchable {
  _encode(packet: Packet, opts: PacketOptions): unknown;
  apply(opts: unknown, cb: (socket: BroadcastSocket) => void): void;
}

/**
 * Writes every `msg` broadcast to the WebSocket connections of its room as one pre-built frame,
 * straight to each connection's `ws` sender: per socket only the write is left.
 *
 * Socket.IO already encodes a broadcast once and frames it once (`wsPreEncodedFrame`, header and
 * payload as two buffers); it then still creates a packet, queues it, emits three events and
 * runs a completion callback per socket, and writes two buffers (a `writev`). Here the frame is
 * merged into one buffer once per broadcast and handed to each socket's sender, which writes it
 * to the TCP socket as it is. That is what a hand-written `ws` server does, and it moves a push to
 * 2,000 sockets for noticeably less CPU (BENCHMARKS.md has the figures).
 *
 * Order is kept: a socket takes this path only when engine.io holds nothing for it (its write
 * buffer empty, its transport writable, not upgrading) and its `ws` sender queues nothing; then
 * the frame is written in the order the socket's writes are made. Otherwise (long-polling, an
 * upgrade in progress, a write still in flight, compression on) the socket gets the broadcast
 * through Socket.IO as before, behind what it already holds. Unsent bytes still show in the `ws`
 * socket's `bufferedAmount`, which the slow-consumer watch reads.
 *
 * A room may hold no engine.io socket at all (every connection on the direct endpoint or Phoenix,
 * served by the connection hub from the message itself): Socket.IO's encoding is then never made.
 * `_encode` still runs once per broadcast (hooks installed after this one see every packet), but
 * the encoding happens at the first engine.io socket the broadcast reaches.
 *
 * Frames written to one socket within one turn of the event loop leave in one system call: the
 * first direct frame of a turn corks the socket's TCP stream and the turn's `setImmediate`
 * uncorks every corked one, so frames queued meanwhile go out together (a `writev`). Under load
 * several pushes arrive per turn (a burst of API requests, one read of the Redis subscriber
 * holding several messages) and each socket then costs one write for all of them instead of one
 * per push; a lone push waits only for the end of the turn. Corking keeps the order of writes.
 */
export function writeFramesDirectly(adapter: Adapter): void {
  const target = adapter as unknown as Patchable;
  const encode = target._encode.bind(target);
  const apply = target.apply.bind(target);
  let pending: Broadcast | undefined;
  target._encode = (packet, opts) => {
    // Filled in place once a socket of the rooms needs it: the broadcast hands this very array
    // to each socket it writes to through Socket.IO.
    const encoded: unknown[] = [];
    pending = { packet, opts, encoded };
    return encoded;
  };
  target.apply = (opts, cb) => {
    const broadcast = pending;
    pending = undefined;
    if (broadcast === undefined) return apply(opts, cb);
    let frame: Buffer | undefined;
    apply(opts, (socket) => {
      // Encoding always gives at least one packet: an empty array is a broadcast not encoded yet.
      if (broadcast.encoded.length === 0) frame = encodeOnce(broadcast, encode);
      if (frame === undefined || !writeFrame(socket.conn as EngineConn, frame)) cb(socket);
    });
  };
}

/** A broadcast whose packet is encoded only once one of its sockets is an engine.io socket. */
interface Broadcast {
  packet: Packet;
  opts: PacketOptions;
  encoded: unknown[];
}

/**
 * Socket.IO's encoding of the broadcast, into its array, and the merged frame of a plain `msg`
 * (none for a broadcast with an ack, an id: Socket.IO registers the ack per socket).
 */
function encodeOnce(
  broadcast: Broadcast,
  encode: (packet: Packet, opts: PacketOptions) => unknown,
): Buffer | undefined {
  const { packet, opts, encoded } = broadcast;
  // The in-memory adapter's own `_encode` (this hook is the first): an array of packets.
  encoded.push(...(encode(packet, opts) as unknown[]));
  const frame = opts.wsPreEncodedFrame;
  if (packet.type !== 2 || packet.id !== undefined || packet.data?.[0] !== 'msg' || !frame)
    return undefined;
  return frame.length === 1 ? frame[0] : Buffer.concat(frame);
}

/** Writes `frame` to the connection's `ws` sender if nothing is queued ahead of it. */
function writeFrame(conn: EngineConn, frame: Buffer): boolean {
  const transport = conn.transport;
  if (
    conn.readyState !== 'open' ||
    conn.upgrading === true ||
    conn.writeBuffer.length !== 0 ||
    transport.name !== 'websocket' ||
    !transport.writable ||
    transport.perMessageDeflate ||
    !transport.socket
  )
    return false;
  return writeBuiltFrame(transport.socket, frame);
}
