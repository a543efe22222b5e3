import type { Server as HttpServer } from 'node:http';
import { Server, type Socket } from 'socket.io';
import type { Config } from '../config/schema.js';
import {
  isRefusal,
  type Admission,
  type AdmissionTicket,
  type CapacityRefusal,
  refusalData,
} from './admission.js';
import { ChannelSession, type SessionDeps } from './channel-session.js';
import { releaseUpgradeRequest } from './upgrade-request.js';
import type { SessionIdentity } from './session-transport.js';
import { originGuard } from './origins.js';
import { authenticateSocket, refusalCode, sessionIdentity } from './socket-auth.js';
import { bindSocketEvents, handshakeOf, socketIoTransport } from './socketio-transport.js';

/**
 * The Socket.IO server, not yet serving: the Redis adapter is installed on it before the
 * channel sessions start. While draining (`accepting()` false) new connections are refused here,
 * at the transport level, which leaves standard clients reconnecting (to another node, through
 * the load balancer) instead of giving up, as a Socket.IO middleware refusal would.
 */
export function createSocketIo(http: HttpServer, config: Config, accepting: () => boolean): Server {
  const originAllowed = originGuard(config.corsOrigins);
  return new Server(http, {
    path: config.socketPath,
    destroyUpgrade: false, // other paths' upgrades: routeUpgrades (realtime/upgrades.ts)
    serveClient: false,
    transports: config.socketTransports,
    cors: { origin: config.corsOrigins === '*' ? '*' : config.corsOrigins },
    allowRequest: (req, callback) => {
      if (!accepting()) return callback('draining', false);
      if (!originAllowed(req.headers.origin)) return callback('origin not allowed', false);
      callback(null, true);
    },
  });
}

/**
 * Serves sockets: admission (node full, connect rate), connect auth, the per-user limit, then a
 * channel session per socket. `admission` is the node's, shared with the Phoenix endpoint.
 */
export function serveSockets(io: Server, deps: SessionDeps, admission: Admission): void {
  const { log } = deps;
  const tickets = new SocketTickets(admission);
  // Capacity first (cheap, before any token is verified): refusals are `connect_error`
  // "unavailable" with a `data.code`, so clients back off instead of hammering the next node.
  io.use(tickets.admitNode);
  io.use((socket, next) => {
    authenticateSocket(handshakeOf(socket), deps.hooks, deps.defaults).then(
      (identity) => {
        socket.data = sessionIdentity(identity);
        next();
      },
      (err: unknown) => {
        const refusal = new Error('unauthorized') as Error & { data: { code: string } };
        refusal.data = { code: refusalCode(err) };
        tickets.release(socket);
        log.debug({ conn: socket.id, code: refusal.data.code }, 'socket refused');
        next(refusal);
      },
    );
  });
  // The user is known only once authenticated.
  io.use(tickets.admitUser);

  io.on('connection', (socket: Socket) => {
    const ticket = tickets.connected(socket);
    // The socket id is the connection id in every log line about this socket.
    log.info(
      {
        conn: socket.id,
        userId: (socket.data as SessionIdentity).userId,
        transport: socket.conn.transport.name,
      },
      'socket connected',
    );
    releaseUpgradeRequest(socket);
    const session = new ChannelSession(socketIoTransport(socket), deps);
    // From here `disconnect` always comes, also when the connection closes: the one listener
    // ends the session and gives the admission ticket back.
    socket.on('disconnect', (reason) => {
      ticket?.release();
      session.end();
      log.info({ conn: socket.id, reason }, 'socket disconnected');
    });
    bindSocketEvents(socket, session, log);
  });
}

type Next = (err?: Error) => void;

/** A socket's admission ticket, and the listener that gives it back if the handshake is cut. */
interface Held {
  ticket: AdmissionTicket;
  onConnClose: () => void;
}

/**
 * Socket.IO's side of admission: two middlewares around authentication, {@link admitNode} first
 * (a ticket, before any token is verified) and {@link admitUser} last (the user is known only
 * after authentication). A refusal is a `connect_error` with message `"unavailable"` and
 * `data: { code, retryAfterMs? }`.
 *
 * A socket holds its ticket from the node check until it is refused ({@link release} for a
 * middleware in between), its connection closes during the handshake, or it disconnects. Nothing
 * is kept in `socket.data`.
 */
class SocketTickets {
  private readonly held = new WeakMap<Socket, Held>();

  constructor(private readonly admission: Admission) {}

  /** Middleware, before authentication: node full, then the connect rate. */
  readonly admitNode = (socket: Socket, next: Next): void => {
    // Gone while Socket.IO set it up: it would be dropped anyway, and its close already fired.
    if (socket.conn.readyState !== 'open') return next(new Error('closed'));
    const answer = this.admission.admitNode(socket.id);
    if (isRefusal(answer)) return next(connectError(answer));
    const held: Held = { ticket: answer, onConnClose: () => this.release(socket) };
    this.held.set(socket, held);
    // A client that goes away mid-handshake gets neither `connection` nor `disconnect`.
    socket.conn.once('close', held.onConnClose);
    next();
  };

  /** Middleware, after authentication (reads `socket.data.userId`): the per-user limit. */
  readonly admitUser = (socket: Socket, next: Next): void => {
    const held = this.held.get(socket);
    const user = (socket.data as { userId?: unknown } | undefined)?.userId;
    // No ticket: released while authenticating (its connection closed); Socket.IO drops it.
    if (!held || typeof user !== 'string') return next();
    const refusal = held.ticket.admitUser(user);
    if (!refusal) return next();
    this.release(socket);
    next(connectError(refusal));
  };

  /** The socket connected (call first thing in `connection`): its ticket, for the `disconnect` listener to give back. */
  connected(socket: Socket): AdmissionTicket | undefined {
    const held = this.held.get(socket);
    if (!held) return undefined;
    this.held.delete(socket);
    socket.conn.off('close', held.onConnClose);
    return held.ticket;
  }

  /** Refused (by a middleware in between, or for its user) or cut during the handshake. */
  release(socket: Socket): void {
    const held = this.held.get(socket);
    if (!held) return;
    this.held.delete(socket);
    socket.conn.off('close', held.onConnClose);
    held.ticket.release();
  }
}

/** The `connect_error` of a capacity refusal. */
function connectError(refusal: CapacityRefusal): Error {
  const err = new Error('unavailable') as Error & { data: CapacityRefusal };
  err.data = refusalData(refusal);
  return err;
}
