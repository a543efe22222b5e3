import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { corked, textFrame } from './ws-frames.js';

/*
 * The server side of a WebSocket (RFC 6455) on the TCP socket itself: the handshake, reading
 * masked frames (fragments, control frames between them, the size limit, UTF-8 of text), writing
 * unmasked ones, and the closing handshake. No extensions are offered (no compression), as with
 * `ws` configured the way pushcast configures it. It exists for memory: `ws` keeps a WebSocket,
 * a receiver (a Writable stream) and a sender per connection, measured at about 3 KiB of RSS per
 * idle connection, more than everything pushcast itself keeps (BENCHMARKS.md, log 21). Here a
 * connection is one small object next to its TCP socket.
 */

/** `readyState` values, as `ws` and browsers number them. */
export const OPEN = 1;
const CLOSING = 2;
export const CLOSED = 3;

/** Timings read when a close starts: a test may lower them (and put them back after). */
export const wireSocketDefaults = {
  /** How long a close handshake may take before the TCP connection is cut (as `ws`). */
  closeTimeoutMs: 30_000,
};
/** Fragments one message may come in (as `ws`: past it, close 1008). */
const MAX_FRAGMENTS = 16_384;
/** What a ping is no longer answered past: output the client is not reading. */
const MAX_UNREAD_BYTES = 1 << 20;
/** The first room kept for a frame that has not fully arrived (it grows by doubling). */
const FIRST_ROOM = 16 * 1024;
const ACCEPT_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const KEY = /^[+/0-9A-Za-z]{22}==$/;

/** What a connection is told by its WebSocket. */
export interface WireListener {
  /** A whole message (fragments joined); text is valid UTF-8. */
  onMessage(data: Buffer, binary: boolean): void;
  /** The TCP connection has closed: the close code received, else 1005 (none) or 1006. */
  onClose(code: number): void;
}

/** A refused upgrade, answered as `ws` answers it. */
export interface HandshakeRefusal {
  status: number;
  message: string;
  headers?: Record<string, string>;
}

/**
 * Checks an upgrade request as a WebSocket handshake and returns the `101` answer's headers, or
 * the refusal (status and message as `ws` gives them).
 */
export function handshakeAnswer(req: IncomingMessage): string | HandshakeRefusal {
  if (req.method !== 'GET') return { status: 405, message: 'Invalid HTTP method' };
  if (req.headers.upgrade?.toLowerCase() !== 'websocket')
    return { status: 400, message: 'Invalid Upgrade header' };
  const key = req.headers['sec-websocket-key'];
  if (key === undefined || !KEY.test(key))
    return { status: 400, message: 'Missing or invalid Sec-WebSocket-Key header' };
  const version = req.headers['sec-websocket-version'];
  if (version !== '13' && version !== '8')
    return {
      status: 400,
      message: 'Missing or invalid Sec-WebSocket-Version header',
      headers: { 'Sec-WebSocket-Version': '13, 8' },
    };
  const accept = createHash('sha1')
    .update(key + ACCEPT_GUID)
    .digest('base64');
  // A subprotocol asked for is agreed to, the first one (as `ws` does by default).
  const protocol = req.headers['sec-websocket-protocol']?.split(',')[0]?.trim();
  return (
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    `Sec-WebSocket-Accept: ${accept}\r\n` +
    (protocol ? `Sec-WebSocket-Protocol: ${protocol}\r\n` : '') +
    '\r\n'
  );
}

/**
 * Answers a refused upgrade and drops the connection once the answer is out (an immediate destroy
 * with the client's bytes unread could reset the connection before the answer arrives).
 */
export function refuseHandshake(socket: Socket, refusal: HandshakeRefusal): void {
  if (!socket.writable) return void socket.destroy();
  const extra = Object.entries(refusal.headers ?? {})
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${refusal.status} ${STATUS_CODES[refusal.status]}\r\nConnection: close\r\n` +
      `Content-Type: text/html\r\nContent-Length: ${Buffer.byteLength(refusal.message)}\r\n` +
      `${extra}\r\n${refusal.message}`,
  );
}

/** A close code a peer may send (RFC 6455 7.4; the ones `ws` accepts). */
function validCloseCode(code: number): boolean {
  return (
    (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) ||
    (code >= 3000 && code <= 4999)
  );
}

const wireOf = Symbol('pushcast.wire');
type TaggedSocket = Socket & { [wireOf]?: WireSocket };

// One listener function of each kind for every socket, not closures per connection.
function onData(this: TaggedSocket, chunk: Buffer): void {
  this[wireOf]?.read(chunk);
}
function onEnd(this: TaggedSocket): void {
  // The client is done sending: so are we, within the close timeout.
  this[wireOf]?.closing();
  this.end();
}
function onError(this: TaggedSocket): void {
  this.destroy();
}
function onClose(this: TaggedSocket): void {
  this[wireOf]?.closed();
}
function cut(socket: Socket): void {
  socket.destroy();
}

/** One server-side WebSocket on an upgraded TCP socket (the handshake already answered). */
export class WireSocket {
  readyState = OPEN;
  /** Bytes of a frame not complete yet: the first `pendingBytes` of `pending`. */
  private pending: Buffer | undefined;
  private pendingBytes = 0;
  /** What the frame in `pending` needs in all (0: its header is not complete yet). */
  private pendingNeeds = 0;
  /** The (non-empty) fragments of a message not complete yet, how many came, and their size. */
  private fragments: Buffer[] | undefined;
  private fragmentCount = 0;
  private fragmentBytes = 0;
  private fragmentsBinary = false;
  private closeSent = false;
  /** The close code received (1005: a close frame without one; 1006: none at all). */
  private code = 1006;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly socket: Socket,
    private readonly listener: WireListener,
    private readonly maxPayload: number,
  ) {
    (socket as TaggedSocket)[wireOf] = this;
    socket.setTimeout(0);
    socket.setNoDelay(true);
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('error', onError);
    socket.on('close', onClose);
  }

  /** Output the socket holds and the kernel has not taken yet. */
  get bufferedAmount(): number {
    return this.socket.writableLength;
  }

  /**
   * Sends a text message. What is sent in one turn of the event loop leaves in one write (the TCP
   * socket is corked until the turn ends): a rejoin's replay and the join's answer, a turn's pushes.
   */
  send(text: string): void {
    this.write(textFrame(text));
  }

  /** Writes a whole frame built by `textFrame` as it is (the same buffer for many sockets). */
  writeFrame(frame: Buffer): void {
    this.write(frame);
  }

  /** Starts the closing handshake; the TCP connection is cut if it does not finish in time. */
  close(code?: number): void {
    if (this.readyState !== OPEN) return;
    this.sendClose(code);
    this.closing();
  }

  /**
   * Closing, whichever side began: the TCP connection is cut if it has not closed within the close
   * timeout (a peer that never answers, or never ends its side, holds nothing for long).
   */
  closing(): void {
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSING;
    this.timer ??= setTimeout(cut, wireSocketDefaults.closeTimeoutMs, this.socket);
  }

  /** Drops the TCP connection now. */
  terminate(): void {
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSING;
    this.socket.destroy();
  }

  /** Resolves once the TCP connection has closed. */
  whenClosed(): Promise<void> {
    if (this.readyState === CLOSED) return Promise.resolve();
    // After the 'close' handler the constructor registered, which calls closed() first.
    return new Promise((resolve) => this.socket.once('close', () => resolve()));
  }

  /** The TCP connection closed (its listener calls this). */
  closed(): void {
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSED;
    clearTimeout(this.timer);
    this.pending = undefined;
    this.fragments = undefined;
    this.listener.onClose(this.code);
  }

  /** Bytes from the client (its listener calls this). */
  read(chunk: Buffer): void {
    // Once a close frame was received or the client broke the protocol, nothing more is read.
    if (this.readyState === CLOSED || this.code !== 1006) return;
    let buf = chunk;
    if (this.pending !== undefined) {
      // Each byte of a frame that arrives in pieces is copied once (into room that doubles), and
      // nothing is parsed until the frame is whole.
      this.keep(chunk);
      if (this.pendingBytes < this.pendingNeeds) return;
      buf = this.pending.subarray(0, this.pendingBytes);
      this.pending = undefined;
      this.pendingBytes = 0;
      this.pendingNeeds = 0;
    }
    let at = 0;
    let needs = 0;
    while (this.code === 1006 && this.readyState !== CLOSED) {
      const left = buf.length - at;
      if (left < 2) break;
      const b0 = buf[at]!;
      const b1 = buf[at + 1]!;
      const fin = (b0 & 0x80) !== 0;
      const opcode = b0 & 0x0f;
      if ((b0 & 0x70) !== 0) return this.fail(1002);
      // Every frame from a client is masked.
      if ((b1 & 0x80) === 0) return this.fail(1002);
      let length = b1 & 0x7f;
      let head = 2;
      if (length === 126) {
        if (left < 4) break;
        length = buf.readUInt16BE(at + 2);
        head = 4;
      } else if (length === 127) {
        if (left < 10) break;
        // Over 4 GiB is over any limit.
        if (buf.readUInt32BE(at + 2) !== 0) return this.fail(1009);
        length = buf.readUInt32BE(at + 6);
        head = 10;
      }
      if (opcode >= 8) {
        if (opcode > 10 || !fin || length > 125) return this.fail(1002);
      } else {
        if (opcode > 2 || (opcode === 0) !== (this.fragments !== undefined)) return this.fail(1002);
        // Refused on its announced size, before any of it is held.
        if (this.fragmentBytes + length > this.maxPayload) return this.fail(1009);
      }
      const end = at + head + 4 + length;
      if (buf.length < end) {
        needs = end - at;
        break;
      }
      const mask = at + head;
      const payload = buf.subarray(mask + 4, end);
      for (let i = 0; i < payload.length; i++) payload[i]! ^= buf[mask + (i & 3)]!;
      at = end;
      this.frame(opcode, fin, payload);
    }
    if (at < buf.length && this.code === 1006 && this.readyState !== CLOSED) {
      this.pendingNeeds = needs;
      this.keep(buf.subarray(at));
    }
  }

  private write(frame: Buffer): void {
    if (this.readyState !== OPEN) return;
    corked.hold(this.socket);
    this.socket.write(frame);
  }

  /** Adds bytes to the frame being kept, growing its room by doubling (never past its need). */
  private keep(bytes: Buffer): void {
    const size = this.pendingBytes + bytes.length;
    if (this.pending === undefined || size > this.pending.length) {
      let room = Math.max(size, (this.pending?.length ?? FIRST_ROOM / 2) * 2);
      if (this.pendingNeeds > 0) room = Math.min(room, Math.max(size, this.pendingNeeds));
      const grown = Buffer.allocUnsafe(room);
      this.pending?.copy(grown, 0, 0, this.pendingBytes);
      this.pending = grown;
    }
    bytes.copy(this.pending, this.pendingBytes);
    this.pendingBytes = size;
  }

  private frame(opcode: number, fin: boolean, payload: Buffer): void {
    switch (opcode) {
      case 0: {
        // Empty fragments are not kept, and a message comes in a bounded number of them.
        if (++this.fragmentCount > MAX_FRAGMENTS) return this.fail(1008);
        if (payload.length > 0) this.fragments!.push(payload);
        this.fragmentBytes += payload.length;
        if (!fin) return;
        const data = Buffer.concat(this.fragments!, this.fragmentBytes);
        const binary = this.fragmentsBinary;
        this.fragments = undefined;
        this.fragmentBytes = 0;
        this.fragmentCount = 0;
        return this.message(data, binary);
      }
      case 1:
      case 2:
        if (fin) return this.message(payload, opcode === 2);
        this.fragments = payload.length > 0 ? [payload] : [];
        this.fragmentBytes = payload.length;
        this.fragmentCount = 1;
        this.fragmentsBinary = opcode === 2;
        return;
      case 8:
        return this.closeFrame(payload);
      case 9:
        // A ping is answered with its payload, unless the client is not reading what it gets.
        if (this.readyState === OPEN && this.socket.writableLength < MAX_UNREAD_BYTES)
          this.socket.write(controlFrame(0x8a, payload));
        return;
      case 10:
        return;
    }
  }

  private message(data: Buffer, binary: boolean): void {
    if (!binary && !isUtf8(data)) return this.fail(1007);
    if (this.readyState === OPEN) this.listener.onMessage(data, binary);
  }

  private closeFrame(payload: Buffer): void {
    if (payload.length === 1) return this.fail(1002);
    let code = 1005;
    if (payload.length >= 2) {
      code = payload.readUInt16BE(0);
      if (!validCloseCode(code)) return this.fail(1002);
      if (!isUtf8(payload.subarray(2))) return this.fail(1007);
    }
    this.code = code;
    // Answered with the same code (none for none), then the TCP connection is ended.
    this.sendClose(code === 1005 ? undefined : code);
    this.closing();
    this.socket.end();
  }

  /** The client broke the protocol: a close frame with `code`, and the connection ended. */
  private fail(code: number): void {
    this.code = code;
    this.pending = undefined;
    this.fragments = undefined;
    if (this.readyState === OPEN) this.sendClose(code);
    this.closing();
    this.socket.end();
  }

  private sendClose(code: number | undefined): void {
    if (this.closeSent || !this.socket.writable) return;
    this.closeSent = true;
    const payload = Buffer.alloc(code === undefined ? 0 : 2);
    if (code !== undefined) payload.writeUInt16BE(code, 0);
    this.socket.write(controlFrame(0x88, payload));
  }
}

/** An unmasked control frame (`first`: FIN and opcode) with a payload of at most 125 bytes. */
function controlFrame(first: number, payload: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(2 + payload.length);
  frame[0] = first;
  frame[1] = payload.length;
  payload.copy(frame, 2);
  return frame;
}
