import { randomBytes } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Socket as NetSocket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { HandshakeInfo } from '../auth/hooks.js';
import { errorCatalogue, type ErrorCode } from '../errors.js';
import { isRefusal, type Admission, type CapacityRefusal } from './admission.js';
import { ChannelSession, type SessionDeps } from './channel-session.js';
import { originGuard } from './origins.js';
import { closedWithin, wsClosed } from './ws-frames.js';
import { PhoenixConnection } from './phoenix-connection.js';
import type { ConnectionHub } from './connection-hub.js';
import {
  authenticateSocket,
  handshakeToKeep,
  refusalCode,
  sessionIdentity,
} from './socket-auth.js';

/**
 * Timings and bounds of the Phoenix endpoint. Not settings: Phoenix's own values, which clients
 * are built for. Read when an endpoint is created, so a test may lower them before it starts a
 * node (and put them back after).
 */
export const phoenixEndpointDefaults = {
  /** A client that sends no heartbeat for this long is closed (Phoenix: 60 s; clients send one every 30 s). */
  heartbeatTimeoutMs: 60_000,
  /** Larger frames close the connection (1009): clients send joins, leaves and heartbeats. */
  maxFrameBytes: 64 * 1024,
  /** An upgrade still not authenticated after this long is refused (Socket.IO's connectTimeout). */
  handshakeTimeoutMs: 45_000,
  /** On stop: how long closing connections get to finish the close handshake before being cut. */
  closeGraceMs: 1000,
};

/** What the endpoint is built from. */
export interface PhoenixEndpointOptions {
  /** The `phoenixPath` setting; the endpoint is `<path>/websocket`. */
  path: string;
  /** The channel sessions' needs: the same as Socket.IO sockets'. */
  sessions: SessionDeps;
  hub: ConnectionHub;
  /** The node's admission, shared with Socket.IO sockets (src/realtime/socket-server.ts). */
  admission: Admission;
  /** False once a draining node stops taking connections. */
  accepting: () => boolean;
}

/** The refusal of a draining node: the client's own reconnect finds another node. */
const draining = {
  message: 'The server is shutting down; connect again (the load balancer picks another node).',
  retryAfterS: 1,
};

/** Protocol versions spoken: the V2 JSON serializer only. */
const SUPPORTED_VSN = /^2\.\d+\.\d+$/;

/**
 * The Phoenix-protocol WebSocket endpoint for PushEx clients (pushex.js, phoenix.js):
 * `GET <path>/websocket?vsn=2.0.0&token=...` upgraded to a WebSocket once the node admits it.
 *
 * The checks, in order, each answered on the raw connection before any WebSocket exists: draining
 * (503), protocol version (400), browser origin (403, `corsOrigins`), node capacity and connection
 * rate (503, before the token is verified), the token through the hooks module's
 * `authenticateSocket` or the built-in JWT rules (403, as Phoenix answers a refused connect), the
 * user's connections (503). Then one {@link PhoenixConnection} and one channel session per socket.
 */
export class PhoenixEndpoint {
  /** The path clients connect to. */
  readonly endpoint: string;
  private readonly wss: WebSocketServer;
  private readonly heartbeatTimeoutMs: number;
  private readonly handshakeTimeoutMs: number;
  private readonly closeGraceMs: number;
  /** Upgrades not answered yet, and open WebSockets: what stop() must end. */
  private readonly handshakes = new Set<NetSocket>();
  private readonly sockets = new Set<WebSocket>();
  private readonly originAllowed: (origin: string | undefined) => boolean;

  constructor(private readonly options: PhoenixEndpointOptions) {
    this.endpoint = `${options.path.replace(/\/+$/, '')}/websocket`;
    this.heartbeatTimeoutMs = phoenixEndpointDefaults.heartbeatTimeoutMs;
    this.handshakeTimeoutMs = phoenixEndpointDefaults.handshakeTimeoutMs;
    this.closeGraceMs = phoenixEndpointDefaults.closeGraceMs;
    this.wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: phoenixEndpointDefaults.maxFrameBytes,
    });
    this.originAllowed = originGuard(options.sessions.config.corsOrigins);
  }

  /** Whether an upgrade request is for this endpoint. */
  matches(url: string): boolean {
    return pathOf(url) === this.endpoint;
  }

  /** Answers an upgrade request for this endpoint: a WebSocket, or an HTTP refusal. */
  handleUpgrade(req: IncomingMessage, socket: NetSocket, head: Buffer): void {
    // A reset while the upgrade is pending must not become an uncaught error.
    socket.on('error', (err) =>
      this.options.sessions.log.debug({ err }, 'phoenix upgrade socket error'),
    );
    this.handshakes.add(socket);
    socket.once('close', () => this.handshakes.delete(socket));
    this.upgrade(req, socket, head).catch((err: unknown) => {
      this.options.sessions.log.warn({ err }, 'phoenix upgrade failed');
      refuse(socket, 500, 'internal');
    });
  }

  /** Open connections (drain closes them spread over time). */
  connections(): PhoenixConnection[] {
    const out: PhoenixConnection[] = [];
    for (const c of this.options.hub.connections()) if (c instanceof PhoenixConnection) out.push(c);
    return out;
  }

  /**
   * Ends everything that is left: pending upgrades at once; open connections get a close frame
   * and {@link phoenixEndpointDefaults.closeGraceMs} to finish the close handshake, then are cut.
   */
  async close(): Promise<void> {
    for (const socket of this.handshakes) socket.destroy();
    for (const connection of this.connections()) connection.closeTransport();
    await closedWithin([...this.sockets].map(wsClosed), this.closeGraceMs);
    for (const ws of this.sockets) ws.terminate();
    this.sockets.clear();
    this.wss.close();
  }

  private async upgrade(req: IncomingMessage, socket: NetSocket, head: Buffer): Promise<void> {
    const { sessions, admission, accepting } = this.options;
    const { log, hooks, defaults } = sessions;
    if (!accepting()) return refuse(socket, 503, 'unavailable', draining);
    const url = new URL(req.url ?? '/', 'http://localhost');
    const vsn = url.searchParams.get('vsn');
    if (vsn === null || !SUPPORTED_VSN.test(vsn))
      return refuse(socket, 400, 'invalid_request', {
        message: `pushcast speaks the Phoenix socket protocol vsn 2.x (JSON serializer) only; this client asked for ${vsn === null ? 'no vsn (1.x)' : `vsn=${vsn.slice(0, 20)}`}`,
      });
    if (!this.originAllowed(req.headers.origin))
      return refuse(socket, 403, 'forbidden', { message: 'This origin may not connect.' });

    const id = `phx-${randomBytes(12).toString('base64url')}`;
    const ticket = admission.admitNode(id);
    if (isRefusal(ticket)) return refuseCapacity(socket, ticket);
    // From here the ticket holds a slot: every way out gives it back.
    let over = false;
    const giveUp = (): void => {
      over = true;
      ticket.release();
    };
    socket.once('close', giveUp);
    const timer = setTimeout(() => {
      log.warn({ conn: id }, 'phoenix upgrade not authenticated in time: refused');
      giveUp();
      refuse(socket, 503, 'unavailable', {
        message: 'The connection was not authenticated in time; retry later.',
        retryAfterS: 1,
      });
    }, this.handshakeTimeoutMs);

    const handshake = handshakeOf(req, url);
    let identity;
    try {
      identity = await authenticateSocket(handshake, hooks, defaults);
    } catch (err) {
      if (over) return;
      const code = refusalCode(err);
      log.debug({ conn: id, code }, 'socket refused');
      giveUp();
      return refuse(socket, 403, code);
    } finally {
      clearTimeout(timer);
    }
    if (over) return;
    if (!accepting()) {
      giveUp();
      return refuse(socket, 503, 'unavailable', draining);
    }
    const userRefusal = ticket.admitUser(identity.userId);
    if (userRefusal) {
      over = true;
      return refuseCapacity(socket, userRefusal);
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      // ws answered 101: the WebSocket's own close gives the slot back from now on.
      socket.off('close', giveUp);
      this.handshakes.delete(socket);
      this.sockets.add(ws);
      ws.once('close', () => this.sockets.delete(ws));
      const connection = new PhoenixConnection(ws, {
        id,
        handshake: handshakeToKeep(handshake, hooks),
        identity: sessionIdentity(identity),
        hub: this.options.hub,
        log,
        heartbeatTimeoutMs: this.heartbeatTimeoutMs,
        onEnd: () => ticket.release(),
      });
      log.info({ conn: id, userId: identity.userId, transport: 'phoenix' }, 'socket connected');
      connection.serve(new ChannelSession(connection, sessions));
    });
  }
}

/**
 * The handshake as authentication sees it: the `token` query parameter as `auth.token` (like a
 * Socket.IO handshake's), every other query parameter (`vsn` included) in `query`.
 */
function handshakeOf(req: IncomingMessage, url: URL): HandshakeInfo {
  const query: Record<string, unknown> = {};
  for (const [key, value] of url.searchParams) if (key !== 'token') query[key] = value;
  const token = url.searchParams.get('token');
  return {
    auth: token === null ? {} : { token },
    headers: req.headers,
    query,
    address: req.socket.remoteAddress ?? '',
  };
}

/** The path of a request URL, or undefined when it cannot be read. */
function pathOf(url: string): string | undefined {
  try {
    return new URL(url, 'http://localhost').pathname;
  } catch {
    return undefined;
  }
}

function refuseCapacity(socket: NetSocket, refusal: CapacityRefusal): void {
  const retryAfterS =
    refusal.retryAfterMs === undefined ? undefined : Math.ceil(refusal.retryAfterMs / 1000);
  refuse(socket, 503, refusal.code, {
    details:
      refusal.retryAfterMs === undefined ? undefined : { retryAfterMs: refusal.retryAfterMs },
    retryAfterS,
  });
}

/**
 * Answers an upgrade with a plain HTTP error (no WebSocket) and closes the connection. The body is
 * the API's error shape, `{ error, code, details? }`; a Phoenix client only sees that it failed.
 */
function refuse(
  socket: NetSocket,
  status: number,
  code: string,
  extra: { message?: string; details?: Record<string, unknown>; retryAfterS?: number } = {},
): void {
  if (!socket.writable) return void socket.destroy();
  const message =
    extra.message ??
    (code in errorCatalogue
      ? errorCatalogue[code as ErrorCode].message
      : 'The connection was refused.');
  const body = JSON.stringify(
    extra.details === undefined
      ? { error: message, code }
      : { error: message, code, details: extra.details },
  );
  const headers = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}`,
    'Connection: close',
    'Content-Type: application/json; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...(extra.retryAfterS === undefined ? [] : [`Retry-After: ${extra.retryAfterS}`]),
  ];
  socket.once('finish', () => socket.destroy());
  socket.end(`${headers.join('\r\n')}\r\n\r\n${body}`);
}
