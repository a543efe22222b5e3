import type { ChannelMessage } from '../delivery/message.js';
import { isPlainObject } from './schemas.js';

/**
 * Socket.IO v4 over a WebSocket, as text frames (Engine.IO protocol 4, Socket.IO protocol 5): what
 * socket.io-client sends and expects on `transports: ['websocket']`. Each frame is one Engine.IO
 * packet: a type digit, then its data; a message (`4`) carries one Socket.IO packet: a type digit,
 * an optional namespace (`/name,`), an optional acknowledgement id (digits), then JSON.
 *
 *   server -> client  `0{"sid",...}` open, `2` ping, `40{"sid"}` connected, `44{message,data?}`
 *                     refused, `42["msg",{...}]` event, `43<id>[answer]` ack, `41` disconnect
 *   client -> server  `3` pong, `40{auth}` connect, `42<id>["join",{...}]` event, `41`, `1` close
 */

/** Engine.IO packet types (first character of a frame). */
export const ENGINE = {
  open: '0',
  close: '1',
  ping: '2',
  pong: '3',
  message: '4',
  upgrade: '5',
  noop: '6',
} as const;

/** Socket.IO packet types (second character of a message frame). */
export const SIO = {
  connect: 0,
  disconnect: 1,
  event: 2,
  ack: 3,
  connectError: 4,
  binaryEvent: 5,
  binaryAck: 6,
} as const;

/** The Engine.IO handshake's values, as the client is told them. */
export interface OpenValues {
  pingInterval: number;
  pingTimeout: number;
  maxPayload: number;
}

/**
 * The first frame of a connection, its Engine.IO session id and timings, as engine.io writes it:
 * the text around the id is built once (ids are URL-safe base64, nothing to escape).
 */
export function openFrames(values: OpenValues): (sid: string) => string {
  // `{"sid":"","upgrades":[],...}`: the id goes between the first two quotes after `"sid":`.
  const json = JSON.stringify({ sid: '', upgrades: [], ...values });
  const at = json.indexOf('""') + 1;
  const before = ENGINE.open + json.slice(0, at);
  const after = json.slice(at);
  return (sid) => before + sid + after;
}

export const PING_FRAME = ENGINE.ping;
export const DISCONNECT_FRAME = `${ENGINE.message}${SIO.disconnect}`;

/** The namespace `/` connected: the socket's id. */
export function connectedFrame(socketId: string): string {
  return `${ENGINE.message}${SIO.connect}${JSON.stringify({ sid: socketId })}`;
}

/** A refused namespace connect: the client's `connect_error` with `message` and `data`. */
export function connectErrorFrame(nsp: string, message: string, data?: unknown): string {
  const body = data === undefined ? { message } : { message, data };
  return `${ENGINE.message}${SIO.connectError}${nspPrefix(nsp)}${JSON.stringify(body)}`;
}

/** An event from the server, without acknowledgement. */
export function eventFrame(event: string, payload: unknown): string {
  return `${ENGINE.message}${SIO.event}${JSON.stringify([event, payload])}`;
}

/** A channel message: the same text as Socket.IO's own broadcast of `emit('msg', message)`. */
export function messageText(message: ChannelMessage): string {
  return eventFrame('msg', message);
}

/** The answer to an event the client sent with acknowledgement id `id`. */
export function ackFrame(id: number, answer: unknown): string {
  return `${ENGINE.message}${SIO.ack}${id}${JSON.stringify([answer])}`;
}

function nspPrefix(nsp: string): string {
  return nsp === '/' ? '' : `${nsp},`;
}

/** A Socket.IO packet from the client. */
export interface SioPacket {
  type: number;
  nsp: string;
  id: number | undefined;
  data: unknown;
  /** Binary frames that follow (BINARY_EVENT, BINARY_ACK): their places in `data` are placeholders. */
  attachments: number;
}

/** What one client frame is. */
export type ClientFrame =
  | { kind: 'pong' }
  | { kind: 'close' }
  | { kind: 'noop' }
  | { kind: 'packet'; packet: SioPacket }
  | { kind: 'invalid'; reason: string };

const PONG: ClientFrame = { kind: 'pong' };
const CLOSE: ClientFrame = { kind: 'close' };
const NOOP: ClientFrame = { kind: 'noop' };

// Namespaces and ack ids are short in every client; anything longer is not one.
const MAX_NSP_CHARS = 300;
const MAX_ACK_DIGITS = 15;
/** Binary attachments of one packet at most (socket.io-parser's own default bound). */
export const MAX_ATTACHMENTS = 10;
/** Nesting of a binary packet's payload at most, where placeholders are looked for. */
const MAX_ATTACHMENT_DEPTH = 32;

/** Reads one text frame from a client; never throws. */
export function decodeClientFrame(text: string): ClientFrame {
  switch (text.charAt(0)) {
    case ENGINE.pong:
      return PONG;
    case ENGINE.close:
      return CLOSE;
    case ENGINE.noop:
    case ENGINE.ping:
    case ENGINE.upgrade:
      // A client never pings in protocol 4 and has nothing to upgrade to here: harmless.
      return NOOP;
    case ENGINE.message:
      return decodePacket(text);
    default:
      return { kind: 'invalid', reason: 'unknown engine packet type' };
  }
}

function decodePacket(text: string): ClientFrame {
  const type = text.charCodeAt(1) - 48;
  if (!(type >= SIO.connect && type <= SIO.binaryAck))
    return { kind: 'invalid', reason: 'unknown packet type' };
  let i = 2;
  let attachments = 0;
  if (type === SIO.binaryEvent || type === SIO.binaryAck) {
    const dash = text.indexOf('-', i);
    const count = dash === -1 ? NaN : Number(text.slice(i, dash));
    if (dash === i || !Number.isInteger(count) || count < 1 || count > MAX_ATTACHMENTS)
      return { kind: 'invalid', reason: 'illegal attachments' };
    attachments = count;
    i = dash + 1;
  }
  let nsp = '/';
  if (text.charAt(i) === '/') {
    const comma = text.indexOf(',', i);
    const end = comma === -1 ? text.length : comma;
    if (end - i > MAX_NSP_CHARS) return { kind: 'invalid', reason: 'namespace too long' };
    nsp = text.slice(i, end);
    i = comma === -1 ? end : end + 1;
  }
  let id: number | undefined;
  const digitsFrom = i;
  while (i < text.length && text.charCodeAt(i) >= 48 && text.charCodeAt(i) <= 57) i++;
  if (i > digitsFrom) {
    if (i - digitsFrom > MAX_ACK_DIGITS) return { kind: 'invalid', reason: 'ack id too long' };
    id = Number(text.slice(digitsFrom, i));
  }
  let data: unknown;
  if (i < text.length) {
    try {
      data = JSON.parse(text.slice(i));
    } catch {
      return { kind: 'invalid', reason: 'payload is not JSON' };
    }
  }
  const packet: SioPacket = { type, nsp, id, data, attachments };
  return validPacket(packet)
    ? { kind: 'packet', packet }
    : { kind: 'invalid', reason: 'invalid payload' };
}

/**
 * Event names Socket.IO keeps for itself (socket.io-parser's list): a client's event by one of
 * them is not read, and socket.io-client refuses to emit one.
 */
export const RESERVED_EVENTS: ReadonlySet<string> = new Set([
  'connect',
  'connect_error',
  'disconnect',
  'disconnecting',
  'newListener',
  'removeListener',
]);

/** Socket.IO's own rules for what each packet type may carry. */
function validPacket(packet: SioPacket): boolean {
  const { type, data, id } = packet;
  switch (type) {
    case SIO.connect:
      return data === undefined || isPlainObject(data);
    case SIO.disconnect:
      return data === undefined;
    case SIO.event:
    case SIO.binaryEvent:
      // A name, not one of the names Socket.IO keeps for itself; or a number.
      return (
        Array.isArray(data) &&
        (typeof data[0] === 'number' ||
          (typeof data[0] === 'string' && !RESERVED_EVENTS.has(data[0])))
      );
    case SIO.ack:
    case SIO.binaryAck:
      return Array.isArray(data) && id !== undefined;
    default:
      // CONNECT_ERROR comes from servers only.
      return false;
  }
}

/**
 * Puts a binary packet's attachments in the places its placeholders (`{ _placeholder: true,
 * num }`) hold; undefined when one names an attachment that is not there, or the payload nests
 * deeper than any event of this server needs (a bound: the walk must not exhaust the stack).
 */
export function withAttachments(data: unknown, buffers: readonly Buffer[], depth = 0): unknown {
  if (depth > MAX_ATTACHMENT_DEPTH) return undefined;
  if (Array.isArray(data)) {
    const out: unknown[] = [];
    for (const item of data) {
      const value = withAttachments(item, buffers, depth + 1);
      if (value === undefined && item !== undefined) return undefined;
      out.push(value);
    }
    return out;
  }
  if (!isPlainObject(data)) return data;
  if (data._placeholder === true) {
    const num = data.num;
    return typeof num === 'number' && Number.isInteger(num) && num >= 0 && num < buffers.length
      ? buffers[num]
      : undefined;
  }
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(data)) {
    const value = withAttachments(item, buffers, depth + 1);
    if (value === undefined) return undefined;
    // Defined, not assigned: a `__proto__` key stays a key.
    Object.defineProperty(out, key, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}
