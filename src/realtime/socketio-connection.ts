import { randomUUID } from 'node:crypto';
import type { Socket as NetSocket } from 'node:net';
import type { Logger } from 'pino';
import type { HandshakeInfo } from '../auth/hooks.js';
import type { ChannelMessage } from '../delivery/message.js';
import { errorCatalogue } from '../errors.js';
import { isRefusal, refusalData, type Admission, type AdmissionTicket } from './admission.js';
import { ChannelSession, type SessionDeps } from './channel-session.js';
import type { ConnectionHub, HubConnection } from './connection-hub.js';
import { isPlainObject, type LeftEvent } from './schemas.js';
import type { CloseReason, SessionIdentity, SessionTransport } from './session-transport.js';
import {
  authenticateSocket,
  handshakeToKeep,
  refusalCode,
  sessionIdentity,
} from './socket-auth.js';
import { answerEvent } from './socketio-events.js';
import {
  ackFrame,
  connectedFrame,
  connectErrorFrame,
  decodeClientFrame,
  DISCONNECT_FRAME,
  eventFrame,
  messageText,
  PING_FRAME,
  SIO,
  type SioPacket,
  withAttachments,
} from './socketio-wire.js';
import { textFrame } from './ws-frames.js';
import { OPEN, WireSocket, type WireListener } from './wire-socket.js';

/** What every Socket.IO WebSocket connection of an endpoint shares (one object per endpoint). */
export interface SocketIoShared {
  sessions: SessionDeps;
  hub: ConnectionHub;
  admission: Admission;
  log: Logger;
  /** Told when a connection's WebSocket has closed, to forget it (the endpoint's ping wheel). */
  forget(connection: SocketIoConnection): void;
}

/** Where a connection is in its life. */
const enum State {
  /** The WebSocket is open; namespace `/` is not connected (none asked yet, or refused). */
  Open,
  /** A connect is being checked (admission, authentication). */
  Connecting,
  /** Connected: a channel session serves it. */
  Connected,
  Ended,
}

/** A channel message as one whole WebSocket frame: built once per message and node. */
export function socketIoMessageFrame(message: ChannelMessage): Buffer {
  return textFrame(messageText(message));
}

/**
 * A Socket.IO socket id or Engine.IO session id: 20 URL-safe characters, like engine.io's own, from
 * pooled entropy (`randomUUID`; `randomBytes` per id costs a call into OpenSSL each).
 */
export function newSocketId(): string {
  return Buffer.from(randomUUID().replace(/-/g, ''), 'hex').toString('base64url').slice(0, 20);
}

/**
 * A socket.io-client on a plain WebSocket (`transports: ['websocket']`): Engine.IO and Socket.IO
 * spoken here, in one object per connection on its own WebSocket (wire-socket.ts), instead of
 * engine.io's socket and
 * transport and Socket.IO's client and socket (idle memory per connection and connect cost are
 * benchmarked figures, BENCHMARKS.md). To the client it is the same server: the same handshake,
 * acknowledgements, `connect_error` shapes, disconnect reasons and messages, byte for byte.
 *
 * A session transport like the others: rooms are the node's connection hub, which writes each
 * channel message as one pre-built frame; join, leave, refresh, recovery and expiry are the
 * channel session's.
 */
export class SocketIoConnection implements SessionTransport, HubConnection, WireListener {
  /** The Socket.IO socket id once connected (a new one per connect attempt, as Socket.IO does). */
  id = '';
  handshake: HandshakeInfo;
  identity: SessionIdentity = NO_IDENTITY;
  /** When the WebSocket opened (ms): a namespace not connected within the connect timeout closes it. */
  readonly openedAt = Date.now();
  /** A ping was sent and nothing came back since. */
  awaitingPong = false;
  /** The ping wheel's slot (the endpoint's bookkeeping). */
  slot = 0;
  private state = State.Open;
  /** The rooms it is in: an array, not a Set (most connections hold a few channels). */
  private inRooms: string[] = [];
  private session: ChannelSession | undefined;
  private ticket: AdmissionTicket | undefined;
  /** A binary packet waiting for its attachments (the binary frames that follow it). */
  private binary: { packet: SioPacket; buffers: Buffer[] } | undefined;

  /** Its WebSocket (a stopping endpoint waits for it to close). */
  readonly wire: WireSocket;

  constructor(
    /** The upgraded TCP socket (the handshake answered). */
    socket: NetSocket,
    /** The handshake without `auth` (it comes with the connect). */
    handshake: HandshakeInfo,
    readonly shared: SocketIoShared,
    maxPayloadBytes: number,
  ) {
    this.handshake = handshake;
    this.wire = new WireSocket(socket, this, maxPayloadBytes);
  }

  /** A message from the client: nothing it sends may throw out of here (it would end the process). */
  onMessage(data: Buffer, binary: boolean): void {
    try {
      this.onFrame(data, binary);
    } catch (err) {
      // Whatever did, this connection is closed, as Socket.IO closes one whose packet it
      // cannot read.
      this.shared.log.warn({ err, conn: this.id }, 'socket.io frame failed');
      this.closeTransportFor('parse error');
    }
  }

  /** The TCP connection closed. */
  onClose(): void {
    this.end('transport close');
    // Only now out of the endpoint's list: a stop waits for (or cuts) what is still closing.
    this.shared.forget(this);
  }

  get userId(): string | undefined {
    return this.identity.userId;
  }
  get transport(): string {
    return 'websocket';
  }
  get encode(): (message: ChannelMessage) => Buffer {
    return socketIoMessageFrame;
  }
  get closed(): boolean {
    return this.state !== State.Connected || this.wire.readyState !== OPEN;
  }
  /** Whether namespace `/` is connected (a channel session serves it). */
  get connected(): boolean {
    return this.state === State.Connected;
  }
  /** Whether it has ended (its WebSocket closing or closed). */
  get ended(): boolean {
    return this.state === State.Ended;
  }

  rooms(): Iterable<string> {
    return this.inRooms;
  }
  inRoom(room: string): boolean {
    return this.inRooms.includes(room);
  }
  joinRoom(room: string): void {
    // Late work of a connection that is gone must not leave it in a room.
    if (this.state !== State.Connected || this.inRooms.includes(room)) return;
    // The first room in an array of one (a push onto an empty array reserves 17 slots).
    if (this.inRooms.length === 0) this.inRooms = [room];
    else this.inRooms.push(room);
    this.shared.hub.add(room, this);
  }
  leaveRoom(room: string): void {
    const at = this.inRooms.indexOf(room);
    if (at === -1) return;
    this.inRooms.splice(at, 1);
    this.shared.hub.remove(room, this);
  }

  send(message: ChannelMessage): void {
    this.wire.send(messageText(message));
  }
  left(event: LeftEvent): void {
    this.wire.send(eventFrame('left', event));
  }

  /** Says why (`error`), then disconnects the namespace (clients do not reconnect), then closes. */
  close(reason: CloseReason): void {
    this.wire.send(eventFrame('error', { code: reason, message: errorCatalogue[reason].message }));
    this.wire.send(DISCONNECT_FRAME);
    this.closeTransportFor('server namespace disconnect');
  }

  /** Drain, or a gap to rejoin: a transport close, so that the client reconnects by itself. */
  closeTransport(): void {
    this.closeTransportFor('transport closed by the server');
  }

  /** Slow consumer or end of drain: drops the TCP connection without waiting for anything. */
  terminate(): void {
    this.wire.terminate();
    this.end('forced close');
  }

  /** Output the socket holds and the kernel has not taken yet. */
  get unsentBytes(): number {
    return this.wire.bufferedAmount;
  }

  /** A frame from {@link socketIoMessageFrame}, as it is. */
  write(frame: Buffer): void {
    if (this.state !== State.Ended) this.wire.writeFrame(frame);
  }

  /** Sends a ping; the next one finds out whether it was answered. */
  ping(): void {
    this.awaitingPong = true;
    this.wire.send(PING_FRAME);
  }

  /** Ends the connection: out of its rooms and counts, its session over, its slot given back. */
  end(reason: string): void {
    if (this.state === State.Ended) return;
    const wasConnected = this.state === State.Connected;
    this.state = State.Ended;
    this.leaveNamespace();
    this.releaseTicket();
    if (wasConnected) this.shared.log.info({ conn: this.id, reason }, 'socket disconnected');
  }

  /** A frame from the client. */
  onFrame(data: Buffer, isBinary: boolean): void {
    if (this.state === State.Ended) return;
    // Anything from the client shows it is there.
    this.awaitingPong = false;
    if (isBinary) return this.onAttachment(data);
    if (this.binary) return this.refuse('got plaintext data when reconstructing a packet');
    const frame = decodeClientFrame(data.toString('utf8'));
    switch (frame.kind) {
      case 'pong':
      case 'noop':
        return;
      case 'close':
        return this.closeTransportFor('transport close');
      case 'invalid':
        return this.refuse(frame.reason);
      case 'packet':
        if (frame.packet.attachments > 0) {
          // Only a connected socket's events carry attachments: nothing is held for anyone else.
          if (this.state !== State.Connected) return this.refuse('invalid state');
          this.binary = { packet: frame.packet, buffers: [] };
          return;
        }
        return this.onPacket(frame.packet);
    }
  }

  /** One binary frame: the next attachment of the packet being put together. */
  private onAttachment(buffer: Buffer): void {
    const pending = this.binary;
    if (!pending) return this.refuse('got binary data when not reconstructing a packet');
    pending.buffers.push(buffer);
    if (pending.buffers.length < pending.packet.attachments) return;
    this.binary = undefined;
    const data = withAttachments(pending.packet.data, pending.buffers);
    if (data === undefined) return this.refuse('illegal attachments');
    this.onPacket({ ...pending.packet, data, attachments: 0 });
  }

  private onPacket(packet: SioPacket): void {
    if (packet.type === SIO.connect) {
      if (packet.nsp !== '/')
        return this.wire.send(connectErrorFrame(packet.nsp, 'Invalid namespace'));
      // A second connect while connected: Socket.IO closes the connection (here also while one
      // is still being checked, where Socket.IO would run two at once).
      if (this.state !== State.Open) return this.refuse('invalid state');
      this.connect(packet.data).catch((err: unknown) => {
        this.shared.log.warn({ err, conn: this.id }, 'socket.io connect failed');
        this.closeTransportFor('connect failed');
      });
      return;
    }
    // Anything else needs the namespace connected (socket.io-client buffers until then).
    if (packet.nsp !== '/' || this.state !== State.Connected) return this.refuse('invalid state');
    if (packet.type === SIO.disconnect) {
      this.leaveNamespace();
      this.shared.log.info(
        { conn: this.id, reason: 'client namespace disconnect' },
        'socket disconnected',
      );
      return;
    }
    // An ack: the server asks for none.
    if (packet.type !== SIO.event && packet.type !== SIO.binaryEvent) return;
    const [name, payload] = packet.data as [string | number, unknown];
    const event = String(name);
    const id = packet.id;
    answerEvent(
      this.session!,
      event,
      payload,
      id === undefined ? undefined : (answer) => this.wire.send(ackFrame(id, answer)),
      (err) => this.shared.log.warn({ err, conn: this.id, event }, 'socket event failed'),
    );
  }

  /**
   * Namespace `/` asked for: capacity (before any token is verified), authentication, the user's
   * connections, as engine.io sockets go through them (src/realtime/socket-server.ts); a refusal
   * is a `connect_error` and leaves the WebSocket open for the client's next try, as Socket.IO does.
   */
  private async connect(auth: unknown): Promise<void> {
    const { admission, sessions, log } = this.shared;
    this.state = State.Connecting;
    this.id = newSocketId();
    const answer = admission.admitNode(this.id);
    if (isRefusal(answer)) return this.refuseConnect('unavailable', refusalData(answer));
    this.ticket = answer;
    const handshake: HandshakeInfo = { ...this.handshake, auth: isPlainObject(auth) ? auth : {} };
    let identity;
    try {
      identity = await authenticateSocket(handshake, sessions.hooks, sessions.defaults);
    } catch (err) {
      if (this.state !== State.Connecting) return;
      const code = refusalCode(err);
      log.debug({ conn: this.id, code }, 'socket refused');
      return this.refuseConnect('unauthorized', { code });
    }
    // Gone while authenticating: end() gave the ticket back.
    if (this.state !== State.Connecting) return;
    const userRefusal = answer.admitUser(identity.userId);
    if (userRefusal) return this.refuseConnect('unavailable', refusalData(userRefusal));
    this.handshake = handshakeToKeep(handshake, sessions.hooks);
    this.identity = sessionIdentity(identity);
    this.state = State.Connected;
    this.session = new ChannelSession(this, sessions);
    this.shared.hub.register(this);
    log.info(
      { conn: this.id, userId: identity.userId, transport: 'websocket' },
      'socket connected',
    );
    this.wire.send(connectedFrame(this.id));
  }

  private refuseConnect(message: string, data: unknown): void {
    this.releaseTicket();
    this.state = State.Open;
    this.wire.send(connectErrorFrame('/', message, data));
  }

  /** Out of the namespace: rooms, counts and session; the WebSocket may stay (a new connect). */
  private leaveNamespace(): void {
    if (this.session === undefined) return;
    const session = this.session;
    this.session = undefined;
    if (this.state === State.Connected) this.state = State.Open;
    this.shared.hub.unregister(this, this.inRooms.splice(0));
    session.end();
    this.releaseTicket();
  }

  /** Gives the admission slot back (only the first release counts). */
  private releaseTicket(): void {
    this.ticket?.release();
    this.ticket = undefined;
  }

  /** Closes the WebSocket (the client reconnects by itself) and ends the connection at once. */
  closeTransportFor(reason: string): void {
    this.wire.close(1000);
    // Out of its rooms and counts at once; the close handshake (bounded) finishes alone.
    this.end(reason);
  }

  /** A frame Socket.IO would not read: the connection is closed ("parse error"). */
  private refuse(reason: string): void {
    this.shared.log.debug({ conn: this.id, reason }, 'socket.io frame refused');
    this.closeTransportFor('parse error');
  }
}

const NO_IDENTITY: SessionIdentity = { userId: undefined, channels: [], data: {}, exp: undefined };
