import type { RawData, WebSocket } from 'ws';

/*
 * The parts of `ws` read here (engine.io's WebSocket transport, src/realtime/direct-frames.ts)
 * are private in its typings; the version is pinned in package.json (ws 8), and
 * test/integration/direct-frames.test.ts fails if they stop being there (a turn's frames must
 * leave a socket in one write). A socket where one of them is missing takes `ws.send`.
 */
interface WsSender {
  /** 0 (DEFAULT) while the sender queues nothing (no compression, no Blob being read). */
  _state?: number;
  sendFrame?(list: Buffer[], cb?: () => void): void;
}
/** The TCP socket under a `ws` socket (`net.Socket`: cork and uncork are public). */
interface NetSocket {
  cork(): void;
  uncork(): void;
}
/** A `ws` socket as read here. */
export interface WsInsides {
  readyState: number;
  _sender?: WsSender;
  _socket?: NetSocket;
}

/**
 * A whole WebSocket text frame as a server sends it (FIN, opcode 1, unmasked: RFC 6455 5.2), built
 * once and written as it is to every socket that gets the same message.
 */
export function textFrame(payload: string): Buffer {
  const length = Buffer.byteLength(payload);
  const head = length < 126 ? 2 : length < 65_536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(head + length);
  frame[0] = 0x81;
  if (head === 2) frame[1] = length;
  else if (head === 4) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeUInt32BE(0, 2);
    frame.writeUInt32BE(length, 6);
  }
  frame.write(payload, head, 'utf8');
  return frame;
}

/** The TCP sockets corked in this turn of the event loop, uncorked together at its end. */
class Corked {
  private readonly sockets = new Set<NetSocket>();
  private readonly flush = (): void => {
    for (const socket of this.sockets) {
      try {
        socket.uncork();
      } catch {
        // Destroyed meanwhile: nothing left to write; the others must still go out.
      }
    }
    this.sockets.clear();
  };

  /** Corks `socket` until the end of this turn (once per turn). */
  hold(socket: NetSocket): void {
    if (this.sockets.has(socket)) return;
    if (this.sockets.size === 0) setImmediate(this.flush);
    socket.cork();
    this.sockets.add(socket);
  }
}

/** The node's one set of corked sockets: frames of one turn leave each socket in one write. */
export const corked = new Corked();

/**
 * Corks the TCP stream under a `ws` socket until the end of this turn: what is sent to it
 * meanwhile (a rejoin's replayed messages and the join's answer) leaves in one write.
 */
export function holdForTurn(ws: WebSocket | WsInsides): void {
  const socket = (ws as WsInsides)._socket;
  if (socket) corked.hold(socket);
}

/**
 * Writes a frame built by {@link textFrame} to an open `ws` socket, corking its TCP stream until
 * the end of this turn. Returns false (nothing written) when the socket is not open or its sender
 * holds something (then the caller sends the payload through `ws.send`, behind it).
 */
export function writeBuiltFrame(ws: WebSocket | WsInsides, frame: Buffer): boolean {
  const socket = ws as WsInsides;
  const sender = socket._sender;
  if (socket.readyState !== 1 || typeof sender?.sendFrame !== 'function' || sender._state !== 0)
    return false;
  holdForTurn(socket);
  sender.sendFrame([frame]);
  return true;
}

/** A received message's bytes as one buffer (`ws` hands fragments over as a list). */
function bufferOf(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/** A received text message. */
export function textOf(data: RawData): string {
  return bufferOf(data).toString('utf8');
}

/**
 * Resolves once every one of `closing` has resolved, or after `graceMs`, whichever is first: how a
 * stopping endpoint waits for the close handshakes it started before it cuts what is left.
 */
export async function closedWithin(
  closing: Array<Promise<unknown>>,
  graceMs: number,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all(closing),
    new Promise((resolve) => (timer = setTimeout(resolve, graceMs))),
  ]);
  clearTimeout(timer);
}

/** Resolves once a `ws` socket has closed. */
export function wsClosed(ws: WebSocket): Promise<void> {
  return ws.readyState === 3
    ? Promise.resolve()
    : new Promise((resolve) => ws.once('close', () => resolve()));
}
