import type { Socket } from 'socket.io';
import type { Logger } from 'pino';
import type { HandshakeInfo } from '../auth/hooks.js';
import type { ChannelMessage } from '../delivery/message.js';
import { errorCatalogue } from '../errors.js';
import type { ChannelSession } from './channel-session.js';
import { settled } from './join-deadline.js';
import type { LeftEvent } from './schemas.js';
import type { SessionIdentity, SessionTransport } from './session-transport.js';

type Ack = (answer: unknown) => void;

/** The client events a socket may send; any other one with an acknowledgement is refused. */
const KNOWN_EVENTS = new Set(['join', 'leave', 'refresh']);

/** The handshake of a Socket.IO connection, as authentication sees it. */
export function handshakeOf(socket: Socket): HandshakeInfo {
  return {
    auth: socket.handshake.auth ?? {},
    headers: socket.handshake.headers,
    query: socket.handshake.query,
    address: socket.handshake.address,
  };
}

/**
 * A Socket.IO socket as a session transport: rooms are Socket.IO rooms (the adapter fans
 * messages out to them), the identity lives in `socket.data` (plain JSON, so cross-node
 * `fetchSockets` can read it), messages are `msg`, `left` and `error` events.
 */
export function socketIoTransport(socket: Socket): SessionTransport {
  const handshake = handshakeOf(socket);
  return {
    id: socket.id,
    handshake,
    get identity() {
      return socket.data as SessionIdentity;
    },
    set identity(identity: SessionIdentity) {
      socket.data = identity;
    },
    get closed() {
      return socket.disconnected;
    },
    rooms: () => socket.rooms,
    inRoom: (room) => socket.rooms.has(room),
    joinRoom: (room) => void socket.join(room),
    leaveRoom: (room) => void socket.leave(room),
    send: (message: ChannelMessage) => void socket.emit('msg', message),
    left: (event: LeftEvent) => void socket.emit('left', event),
    close: (reason) => {
      socket.emit('error', { code: reason, message: errorCatalogue[reason].message });
      socket.disconnect(true);
    },
  };
}

/** Routes a socket's events to its session; every event with an acknowledgement is answered. */
export function bindSocketEvents(socket: Socket, session: ChannelSession, log: Logger): void {
  on(socket, 'join', (p) => session.join(p), log);
  on(socket, 'leave', (p) => session.leave(p), log);
  on(socket, 'refresh', (p) => session.refresh(p), log);
  // Any other event that asks for an answer gets one: a client must never wait for ever.
  socket.onAny((event: string, ...args: unknown[]) => {
    if (KNOWN_EVENTS.has(event)) return;
    const ack = args.at(-1);
    if (typeof ack === 'function') (ack as Ack)({ ok: false, error: 'invalid_request' });
  });
  socket.on('disconnect', () => session.end());
}

/** Registers an event whose handler's answer goes to the acknowledgement, whatever happens. */
function on(
  socket: Socket,
  event: string,
  handler: (payload: unknown) => unknown,
  log: Logger,
): void {
  socket.on(event, (...args: unknown[]) => {
    // Socket.IO hands the acknowledgement over as the last argument, whatever came before it
    // (`emit('join', ack)` with no payload, or extra arguments after the payload).
    const ack = (typeof args.at(-1) === 'function' ? args.pop() : undefined) as Ack | undefined;
    const payload = args[0];
    const body = typeof payload === 'function' ? undefined : payload;
    Promise.resolve()
      .then(() => handler(body))
      .then(
        // Settled and sent in one step: nothing can change the answer in between.
        (answer) => ack?.(settled(answer)),
        (err: unknown) => {
          log.warn({ err, conn: socket.id, event }, 'socket event failed');
          ack?.({ ok: false, error: 'invalid_request' });
        },
      );
  });
}
