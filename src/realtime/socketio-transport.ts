import type { Socket } from 'socket.io';
import type { Logger } from 'pino';
import type { HandshakeInfo } from '../auth/hooks.js';
import type { ChannelMessage } from '../delivery/message.js';
import { errorCatalogue } from '../errors.js';
import type { ChannelSession } from './channel-session.js';
import type { LeftEvent } from './schemas.js';
import type { CloseReason, SessionIdentity, SessionTransport } from './session-transport.js';
import { answerEvent, type Ack } from './socketio-events.js';

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
 *
 * A class, not an object of closures: a node holds one per socket, and methods on the prototype
 * cost nothing per socket (idle memory per connection is a benchmarked figure, BENCHMARKS.md).
 */
class SocketIoTransport implements SessionTransport {
  readonly handshake: HandshakeInfo;

  constructor(private readonly socket: Socket) {
    this.handshake = handshakeOf(socket);
  }

  get id(): string {
    return this.socket.id;
  }
  get identity(): SessionIdentity {
    return this.socket.data as SessionIdentity;
  }
  set identity(identity: SessionIdentity) {
    this.socket.data = identity;
  }
  get closed(): boolean {
    return this.socket.disconnected;
  }
  rooms(): Iterable<string> {
    return this.socket.rooms;
  }
  inRoom(room: string): boolean {
    return this.socket.rooms.has(room);
  }
  joinRoom(room: string): void {
    void this.socket.join(room);
  }
  leaveRoom(room: string): void {
    void this.socket.leave(room);
  }
  send(message: ChannelMessage): void {
    this.socket.emit('msg', message);
  }
  left(event: LeftEvent): void {
    this.socket.emit('left', event);
  }
  close(reason: CloseReason): void {
    this.socket.emit('error', { code: reason, message: errorCatalogue[reason].message });
    this.socket.disconnect(true);
  }
}

/** A Socket.IO socket as a session transport. */
export function socketIoTransport(socket: Socket): SessionTransport {
  return new SocketIoTransport(socket);
}

/**
 * Routes a socket's events to its session; every event with an acknowledgement is answered.
 * One catch-all listener per socket instead of one per event: fewer closures and listener
 * arrays per connection.
 */
export function bindSocketEvents(socket: Socket, session: ChannelSession, log: Logger): void {
  socket.onAny((event: string, ...args: unknown[]) => {
    // Socket.IO hands the acknowledgement over as the last argument, whatever came before it
    // (`emit('join', ack)` with no payload, or extra arguments after the payload).
    const ack = (typeof args.at(-1) === 'function' ? args.pop() : undefined) as Ack | undefined;
    const payload = typeof args[0] === 'function' ? undefined : args[0];
    answerEvent(session, event, payload, ack, (err) =>
      log.warn({ err, conn: socket.id, event }, 'socket event failed'),
    );
  });
}
