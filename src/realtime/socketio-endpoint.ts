import type { IncomingMessage } from 'node:http';
import type { Socket as NetSocket } from 'node:net';
import type { HandshakeInfo } from '../auth/hooks.js';
import type { Admission } from './admission.js';
import type { SessionDeps } from './channel-session.js';
import type { ConnectionHub } from './connection-hub.js';
import { newSocketId, SocketIoConnection, type SocketIoShared } from './socketio-connection.js';
import { originGuard } from './origins.js';
import { openFrames } from './socketio-wire.js';
import { closedWithin, corked } from './ws-frames.js';
import { handshakeAnswer, refuseHandshake } from './wire-socket.js';

/**
 * Timings and bounds of Socket.IO connections on a plain WebSocket: engine.io's and Socket.IO's
 * defaults, which pushcast does not change for its engine.io sockets either. Read when an
 * endpoint is created, so a test may lower them before it starts a node (and put them back after).
 */
export const socketIoEndpointDefaults = {
  /** The server pings every connection this often; the client closes after interval + timeout without one. */
  pingIntervalMs: 25_000,
  /** Told to the client; here a ping not answered by the next one closes the connection. */
  pingTimeoutMs: 20_000,
  /** A WebSocket whose namespace `/` is not connected after this long is closed. */
  connectTimeoutMs: 45_000,
  /** Larger frames close the connection (1009): engine.io's `maxHttpBufferSize`. */
  maxPayloadBytes: 1_000_000,
  /** On stop: how long closing connections get to finish the close handshake before being cut. */
  closeGraceMs: 1000,
};

/** Slots of the ping wheel: each connection is visited once per ping interval, spread over them. */
const WHEEL_SLOTS = 25;

/** What the endpoint is built from. */
export interface SocketIoEndpointOptions {
  /** The `socketPath` setting. */
  path: string;
  sessions: SessionDeps;
  hub: ConnectionHub;
  /** The node's admission, shared with every transport. */
  admission: Admission;
  /** False once a draining node stops taking connections. */
  accepting: () => boolean;
}

/**
 * Socket.IO clients that open a WebSocket directly (`transports: ['websocket']`, what the pushcast
 * SDK tries first): `GET <socketPath>/?EIO=4&transport=websocket` without a session id. Served
 * here, one {@link SocketIoConnection} per WebSocket, instead of through engine.io; long-polling,
 * and a long-polling session upgrading to WebSocket, stay with engine.io (src/realtime/socket-server.ts).
 *
 * Refusals before the WebSocket exists are engine.io's: a draining node, or a browser origin not
 * in `corsOrigins`, gets HTTP 400 with the reason, and the client's own reconnect goes on.
 *
 * Pings: one timer for the endpoint, not two per connection. The wheel visits a slot of the
 * connections at each tick; a visited connection that has not answered the last ping is closed
 * ("ping timeout"), one still not connected after the connect timeout too, the others are pinged.
 */
export class SocketIoEndpoint {
  private readonly enginePath: string;
  private readonly shared: SocketIoShared;
  private readonly wheel: Array<Set<SocketIoConnection>> = [];
  private cursor = 0;
  private readonly timer: NodeJS.Timeout;
  private readonly originAllowed: (origin: string | undefined) => boolean;
  private readonly values = { ...socketIoEndpointDefaults };
  /** The open packet of a connection, from its session id. */
  private readonly open: (sid: string) => string;

  constructor(private readonly options: SocketIoEndpointOptions) {
    // engine.io's own check: the request URL starts with its path and a slash.
    this.enginePath = `${options.path.replace(/\/$/, '')}/`;
    this.originAllowed = originGuard(options.sessions.config.corsOrigins);
    for (let i = 0; i < WHEEL_SLOTS; i++) this.wheel.push(new Set());
    this.open = openFrames({
      pingInterval: this.values.pingIntervalMs,
      pingTimeout: this.values.pingTimeoutMs,
      maxPayload: this.values.maxPayloadBytes,
    });
    this.shared = {
      sessions: options.sessions,
      hub: options.hub,
      admission: options.admission,
      log: options.sessions.log,
      forget: (connection) => this.wheel[connection.slot]!.delete(connection),
    };
    this.timer = setInterval(() => this.tick(), this.values.pingIntervalMs / WHEEL_SLOTS);
    this.timer.unref();
  }

  /**
   * Takes an upgrade request that opens a new Socket.IO WebSocket (protocol 4, no session id) and
   * answers it: a WebSocket, or engine.io's refusal. Returns false, leaving it untouched, for
   * anything else under the path (engine.io's).
   */
  handleUpgrade(req: IncomingMessage, socket: NetSocket, head: Buffer): boolean {
    const url = req.url ?? '';
    if (!url.startsWith(this.enginePath)) return false;
    const mark = url.indexOf('?');
    const query = new URLSearchParams(mark === -1 ? '' : url.slice(mark + 1));
    if (query.get('EIO') !== '4' || query.get('transport') !== 'websocket' || query.has('sid'))
      return false;
    // A reset while the upgrade is pending must not become an uncaught error (a module function:
    // a closure here would keep this call's scope, the first handshake with it, for the
    // connection's life).
    socket.on('error', ignoreError);
    if (!this.options.accepting()) refuseHandshake(socket, { status: 400, message: 'draining' });
    else if (!this.originAllowed(req.headers.origin))
      refuseHandshake(socket, { status: 400, message: 'origin not allowed' });
    else this.upgrade(req, socket, head, query);
    return true;
  }

  private upgrade(
    req: IncomingMessage,
    socket: NetSocket,
    head: Buffer,
    query: URLSearchParams,
  ): void {
    const answer = handshakeAnswer(req);
    if (typeof answer !== 'string') return refuseHandshake(socket, answer);
    // The handshake as authentication sees it, before the connect brings `auth`.
    const handshake: HandshakeInfo = {
      auth: {},
      headers: req.headers,
      query: Object.fromEntries(query),
      address: req.socket.remoteAddress ?? '',
    };
    // The 101 answer and the open packet leave in one write (at the end of this turn).
    corked.hold(socket);
    socket.write(answer);
    // The connection's WebSocket listens for errors from here on.
    socket.off('error', ignoreError);
    const connection = new SocketIoConnection(
      socket,
      handshake,
      this.shared,
      this.values.maxPayloadBytes,
    );
    // Visited last in the wheel's round: about one ping interval from now.
    connection.slot = (this.cursor + WHEEL_SLOTS - 1) % WHEEL_SLOTS;
    this.wheel[connection.slot]!.add(connection);
    connection.wire.send(this.open(newSocketId()));
    // What the client sent right behind its handshake.
    if (head.length > 0) connection.wire.read(head);
  }

  /** Every open WebSocket of the endpoint, connected or not (drain closes them). */
  connections(): SocketIoConnection[] {
    const out: SocketIoConnection[] = [];
    for (const slot of this.wheel) for (const connection of slot) out.push(connection);
    return out;
  }

  /**
   * Ends everything that is left: open connections get a close frame and
   * {@link socketIoEndpointDefaults.closeGraceMs} to finish the close handshake, then are cut.
   */
  async close(): Promise<void> {
    clearInterval(this.timer);
    const left = this.connections();
    for (const connection of left) connection.closeTransport();
    await closedWithin(
      left.map((connection) => connection.wire.whenClosed()),
      this.values.closeGraceMs,
    );
    for (const connection of left) connection.terminate();
  }

  private tick(): void {
    const slot = this.wheel[this.cursor]!;
    this.cursor = (this.cursor + 1) % WHEEL_SLOTS;
    const now = Date.now();
    for (const connection of [...slot]) {
      // Ended, its WebSocket still closing: nothing to ping.
      if (connection.ended) continue;
      if (connection.awaitingPong) connection.closeTransportFor('ping timeout');
      else if (!connection.connected && now - connection.openedAt > this.values.connectTimeoutMs)
        connection.closeTransportFor('connect timeout');
      else connection.ping();
    }
  }
}

function ignoreError(): void {}
