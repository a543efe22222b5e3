import type { Server as HttpServer } from 'node:http';
import { Server, type Socket } from 'socket.io';
import type { Config } from '../config/schema.js';
import { Admission } from './admission.js';
import { ChannelSession, type SessionDeps } from './channel-session.js';
import type { SessionIdentity } from './session-transport.js';
import { authenticateSocket, refusalCode, sessionIdentity } from './socket-auth.js';
import { bindSocketEvents, handshakeOf, socketIoTransport } from './socketio-transport.js';

/**
 * The Socket.IO server, not yet serving: the Redis adapter is installed on it before the
 * channel sessions start. While draining (`accepting()` false) new connections are refused here,
 * at the transport level, which leaves standard clients reconnecting (to another node, through
 * the load balancer) instead of giving up, as a Socket.IO middleware refusal would.
 */
export function createSocketIo(http: HttpServer, config: Config, accepting: () => boolean): Server {
  const allowedOrigins = config.corsOrigins === '*' ? undefined : new Set(config.corsOrigins);
  return new Server(http, {
    path: config.socketPath,
    destroyUpgrade: false, // other paths' upgrades: routeUpgrades (realtime/phoenix-upgrades.ts)
    serveClient: false,
    transports: config.socketTransports,
    cors: { origin: config.corsOrigins === '*' ? '*' : config.corsOrigins },
    allowRequest: (req, callback) => {
      if (!accepting()) return callback('draining', false);
      // CORS headers only guard long-polling; a browser's WebSocket carries its Origin too, so
      // the same origin list is enforced here. Clients that send no Origin (servers) pass.
      const origin = req.headers.origin;
      if (allowedOrigins && origin !== undefined && !allowedOrigins.has(origin))
        return callback('origin not allowed', false);
      callback(null, true);
    },
  });
}

/**
 * Serves sockets: admission (node full, connect rate), connect auth, the per-user limit, then a
 * channel session per socket.
 */
export function serveSockets(io: Server, deps: SessionDeps): void {
  const { config, log } = deps;
  // Capacity first (cheap, before any token is verified): refusals are `connect_error`
  // "unavailable" with a `data.code`, so clients back off instead of hammering the next node.
  const admission = new Admission(
    config.limits,
    () => io.of('/').sockets.size,
    (code, socket) => log.debug({ conn: socket.id, code }, 'socket refused'),
  );
  io.use(admission.admitNode);
  io.use((socket, next) => {
    authenticateSocket(handshakeOf(socket), deps.hooks, deps.defaults).then(
      (identity) => {
        socket.data = sessionIdentity(identity);
        next();
      },
      (err: unknown) => {
        const refusal = new Error('unauthorized') as Error & { data: { code: string } };
        refusal.data = { code: refusalCode(err) };
        admission.refused(socket);
        log.debug({ conn: socket.id, code: refusal.data.code }, 'socket refused');
        next(refusal);
      },
    );
  });
  // The user is known only once authenticated.
  io.use(admission.admitUser);

  io.on('connection', (socket: Socket) => {
    admission.connected(socket);
    // The socket id is the connection id in every log line about this socket.
    log.info(
      {
        conn: socket.id,
        userId: (socket.data as SessionIdentity).userId,
        transport: socket.conn.transport.name,
      },
      'socket connected',
    );
    // The upgrade request (an IncomingMessage, its raw headers and stream state) is held by
    // engine.io for the connection's life and read by nothing once the handshake is built (the
    // handshake keeps its headers): let it go, it is the largest part of an idle socket.
    (socket.conn as unknown as { request: unknown }).request = undefined;
    const session = new ChannelSession(socketIoTransport(socket), deps);
    socket.on('disconnect', (reason) => {
      session.end();
      log.info({ conn: socket.id, reason }, 'socket disconnected');
    });
    bindSocketEvents(socket, session, log);
  });
}
