import type { Server as HttpServer } from 'node:http';
import { Server, type Socket } from 'socket.io';
import type { Logger } from 'pino';
import type { DefaultAuth, HandshakeInfo, Hooks } from '../auth/hooks.js';
import type { Config } from '../config/schema.js';
import type { Bus } from '../delivery/bus.js';
import type { HistoryPolicy } from '../delivery/history-policy.js';
import { authenticateSocket, refusalCode } from './socket-auth.js';
import { handleChannels } from './channel-handlers.js';
import type { RoomTaps } from './room-taps.js';
import type { RateLimiter } from '../auth/rate-limiter.js';
import { Admission } from './admission.js';

/** What the socket layer needs from the rest of the server. */
export interface RealtimeDeps {
  config: Config;
  log: Logger;
  hooks: Hooks;
  defaults: DefaultAuth;
  bus: Bus;
  history: HistoryPolicy;
  /** Live-message listeners for sockets catching up (join with `since`). */
  taps: RoomTaps;
  /** Resolves once this node receives the room's messages (Redis subscription active). */
  ensureSubscribed(room: string): Promise<void>;
  /** join/leave/refresh per socket (keyed by socket id). */
  eventLimiter: RateLimiter;
  /** False while draining: new connections are refused at the transport level. */
  accepting(): boolean;
}

/** Per-socket state kept in `socket.data`: plain JSON only, so it can cross nodes. */
export interface SocketData {
  userId: string | undefined;
  channels: string[];
  data: Record<string, unknown>;
  exp: number | undefined;
}

/**
 * Creates the Socket.IO server: admission (node full, connect rate), connect auth, the per-user
 * limit, then the channel events per socket.
 */
export function createSocketServer(http: HttpServer, deps: RealtimeDeps): Server {
  const { config } = deps;
  const allowedOrigins = config.corsOrigins === '*' ? undefined : new Set(config.corsOrigins);
  const io = new Server(http, {
    path: config.socketPath,
    serveClient: false,
    cors: { origin: config.corsOrigins === '*' ? '*' : config.corsOrigins },
    // Refusing here, not in a Socket.IO middleware, leaves standard clients reconnecting (to
    // another node, through the load balancer) instead of giving up.
    allowRequest: (req, callback) => {
      if (!deps.accepting()) return callback('draining', false);
      // CORS headers only guard long-polling; a browser's WebSocket carries its Origin too, so
      // the same origin list is enforced here. Clients that send no Origin (servers) pass.
      const origin = req.headers.origin;
      if (allowedOrigins && origin !== undefined && !allowedOrigins.has(origin))
        return callback('origin not allowed', false);
      callback(null, true);
    },
  });

  // Capacity first (cheap, before any token is verified): refusals are `connect_error`
  // "unavailable" with a `data.code`, so clients back off instead of hammering the next node.
  const admission = new Admission(
    config.limits,
    () => io.of('/').sockets.size,
    (code, socket) => deps.log.debug({ conn: socket.id, code }, 'socket refused'),
  );
  io.use(admission.admitNode);
  io.use((socket, next) => {
    const handshake: HandshakeInfo = {
      auth: socket.handshake.auth ?? {},
      headers: socket.handshake.headers,
      query: socket.handshake.query,
      address: socket.handshake.address,
    };
    authenticateSocket(handshake, deps.hooks, deps.defaults).then(
      (identity) => {
        const data: SocketData = {
          userId: identity.userId,
          channels: identity.channels ?? [],
          data: identity.data ?? {},
          exp: identity.exp,
        };
        socket.data = data;
        next();
      },
      (err: unknown) => {
        const refusal = new Error('unauthorized') as Error & { data: { code: string } };
        refusal.data = { code: refusalCode(err) };
        admission.refused(socket);
        deps.log.debug({ conn: socket.id, code: refusal.data.code }, 'socket refused');
        next(refusal);
      },
    );
  });
  // The user is known only once authenticated.
  io.use(admission.admitUser);

  io.on('connection', (socket: Socket) => {
    admission.connected(socket);
    // The socket id is the connection id in every log line about this socket.
    deps.log.info(
      {
        conn: socket.id,
        userId: (socket.data as SocketData).userId,
        transport: socket.conn.transport.name,
      },
      'socket connected',
    );
    socket.on('disconnect', (reason) =>
      deps.log.info({ conn: socket.id, reason }, 'socket disconnected'),
    );
    handleChannels(socket, deps);
  });
  return io;
}
