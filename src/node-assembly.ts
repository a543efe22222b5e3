import { createServer, type RequestListener, type Server as HttpServer } from 'node:http';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import type { Server as SocketServer } from 'socket.io';
import { ApiKeyring } from './auth/api-keys.js';
import { loadHooks, type DefaultAuth, type Hooks } from './auth/hooks.js';
import { TokenVerifier } from './auth/jwt.js';
import { createBackend, type Backend } from './backend/backend.js';
import { ClusterControl } from './cluster/cluster-control.js';
import { ClusterView, occupancyOf } from './cluster/cluster-view.js';
import type { Config } from './config/schema.js';
import { HistoryPolicy } from './delivery/history-policy.js';
import { roomOf } from './delivery/names.js';
import { PushPipeline } from './delivery/pipeline.js';
import { PushIdGenerator } from './delivery/push-id.js';
import { builtInApiAuth } from './http/api-auth.js';
import { createHttpApp } from './http/app.js';
import type { LifecycleState } from './lifecycle/state.js';
import { RateLimiter } from './limits/token-bucket.js';
import { Instrumentation } from './metrics/instrumentation.js';
import { PushMetrics } from './metrics/metrics.js';
import { Admission } from './realtime/admission.js';
import type { SessionDeps } from './realtime/channel-session.js';
import { writeFramesDirectly } from './realtime/direct-frames.js';
import { observeBroadcasts } from './realtime/observe.js';
import { ConnectionHub } from './realtime/connection-hub.js';
import { PhoenixEndpoint } from './realtime/phoenix-endpoint.js';
import { routeUpgrades } from './realtime/upgrades.js';
import { RoomTaps } from './realtime/room-taps.js';
import {
  hubConsumers,
  socketIoConsumers,
  watchSlowConsumers,
  type SlowConsumerWatch,
} from './realtime/slow-consumers.js';
import { builtInJoinAuth, builtInSocketAuth } from './realtime/socket-auth.js';
import { createSocketIo, serveSockets } from './realtime/socket-server.js';
import { SocketIoEndpoint } from './realtime/socketio-endpoint.js';
import { UserSessions } from './realtime/user-sessions.js';
import { ExpirySchedule } from './realtime/expiry-schedule.js';
import type { SessionIdentity } from './realtime/session-transport.js';
import { VERSION } from './version.js';
import { webhooksFor, type Webhooks } from './webhooks/webhooks.js';

/** What a node is made of once assembled (before it listens). */
export interface NodeParts {
  http: HttpServer;
  io: SocketServer;
  backend: Backend;
  pipeline: PushPipeline;
  slowConsumers: SlowConsumerWatch;
  /** The Phoenix-protocol endpoint (PushEx clients); undefined when `phoenixPath` is empty. */
  phoenix: PhoenixEndpoint | undefined;
  /** Socket.IO clients on a plain WebSocket; undefined when `socketDirect` is off or `socketTransports` has no `websocket`. */
  socketIoDirect: SocketIoEndpoint | undefined;
  /** Occupancy webhooks; undefined without a receiver URL. */
  webhooks: Webhooks | undefined;
}

/** What the assembly needs from the node around it. */
export interface AssemblyContext {
  config: Config;
  log: Logger;
  node: string;
  /** Hooks given in code, on top of the hooks module named in the settings. */
  hooks: Hooks | undefined;
  registry: Registry | undefined;
  state: () => LifecycleState;
  /** False once a draining node stops taking requests and connections. */
  accepting: () => boolean;
}

/**
 * Builds every part of a node, each from the ones before it: auth, the HTTP and Socket.IO
 * servers, the backend (memory or Redis), the pipeline, metrics and instrumentation, the channel
 * sessions and the HTTP app. Nothing is bound late; the parts meet through constructor arguments
 * and events.
 */
export async function assembleNode(context: AssemblyContext): Promise<NodeParts> {
  const { config, log, node } = context;
  const hooks: Hooks = {
    ...(config.hooks ? await loadHooks(config.hooks) : {}),
    ...context.hooks,
  };
  const defaults: DefaultAuth = {
    authenticateSocket: builtInSocketAuth(new TokenVerifier(config.jwt)),
    authorizeJoin: builtInJoinAuth(config.publicChannels),
    authenticateApi: builtInApiAuth(new ApiKeyring(config.apiKeys)),
  };

  // The HTTP server needs its request listener before Socket.IO attaches (engine.io then forwards
  // requests outside its path to it), but the app is built last, from the parts below: requests
  // that arrive in between (none: the server listens only once assembled) would get a 503.
  let app: RequestListener = (_req, res) => void res.writeHead(503).end();
  const http = createServer((req, res) => app(req, res));
  const io = createSocketIo(http, config, context.accepting);
  const history = new HistoryPolicy(config.history);
  const backend = await createBackend({
    config,
    io,
    history,
    log,
    // The hub is made below, from the backend's parts; it is only called once serving.
    rejoinOthers: (room) => hub.closeTransports(room),
  });
  const pipeline = new PushPipeline(backend.bus, new PushIdGenerator(), config.maxInflight);

  // The taps that let a catching-up connection (and the admin watch) see a room's live messages
  // without being a socket in it; they also hold the connection hub's rooms in the adapter.
  const taps = new RoomTaps(
    () => io.of('/').adapter,
    (room) => backend.ensureSubscribed(room),
  );
  // Phoenix-protocol connections (PushEx clients) and Socket.IO clients on a plain WebSocket:
  // connections of the hub, counted with engine.io's sockets everywhere.
  const phoenixOn = config.phoenixPath !== '';
  const directOn = config.socketDirect && config.socketTransports.includes('websocket');
  const registry = context.registry ?? new Registry();
  // Webhooks (occupancy and presence), when a receiver is configured: fed by every transport.
  const webhooks = webhooksFor(config, backend, registry, log, node);
  const hub = new ConnectionHub(taps, webhooks?.occupancy);

  const metrics = new PushMetrics(registry, {
    sockets: () => io.of('/').sockets.size + hub.size,
    ...(phoenixOn ? { phoenixSockets: () => hub.sizeOf('phoenix') } : {}),
    subscriptions: () => occupancyOf(io, hub).subscriptions,
    inflight: () => pipeline.inflightCount,
    draining: () => context.state() === 'draining',
    redisUp: () => backend.bus.ready(),
  });
  const instrumentation = new Instrumentation(hooks, metrics, log, node);
  pipeline.onRequested((result) => instrumentation.requested(result));

  const startedAt = Date.now();
  const view = new ClusterView(
    io,
    () => ({
      id: node,
      version: VERSION,
      uptimeS: Math.round((Date.now() - startedAt) / 1000),
      state: context.state(),
      inflight: pipeline.inflightCount,
      rates: {
        requested10s: metrics.requestedRate.rate(10),
        requested60s: metrics.requestedRate.rate(59),
        delivered10s: metrics.deliveredRate.rate(10),
        delivered60s: metrics.deliveredRate.rate(59),
      },
    }),
    backend.clusterReady,
    hub,
  );

  // This node's sessions by user, both transports: the control API (disconnect, unsubscribe)
  // acts on them here, and on the other nodes' through server-side requests.
  const users = new UserSessions();
  const control = new ClusterControl(io, users, backend.clusterReady);

  // Channel sessions: the same for Socket.IO sockets and Phoenix connections.
  const sessions: SessionDeps = {
    config,
    log,
    hooks,
    defaults,
    bus: backend.bus,
    history,
    taps,
    ensureSubscribed: (room) => backend.ensureSubscribed(room),
    eventLimiter: new RateLimiter(
      config.limits.socketEventsPerSecond,
      config.limits.socketEventBurst,
    ),
    users,
    expiries: new ExpirySchedule(),
  };
  // One admission for the node's connection limits, whichever the transport: one count of
  // connections and handshakes in progress, one per user, one connect-rate bucket.
  const admission = new Admission(config.limits, (code, conn) =>
    log.debug({ conn, code }, 'socket refused'),
  );
  serveSockets(io, sessions, admission);
  const phoenix = phoenixOn
    ? new PhoenixEndpoint({
        path: config.phoenixPath,
        sessions,
        hub,
        admission,
        accepting: context.accepting,
      })
    : undefined;
  const socketIoDirect = directOn
    ? new SocketIoEndpoint({
        path: config.socketPath,
        sessions,
        hub,
        admission,
        accepting: context.accepting,
      })
    : undefined;
  routeUpgrades(http, { socketPath: config.socketPath, phoenix, socketIo: socketIoDirect });

  // Per socket only the write: one merged WebSocket frame per broadcast, made only when the room
  // has an engine.io socket. Hooked first: the observer below must see every broadcast's packet
  // (its `_encode` runs before this one's, its observer after this one's `apply`).
  writeFramesDirectly(io.of('/').adapter);
  // Once per broadcast on this node: taps, the connection hub (direct Socket.IO and Phoenix
  // connections), delivery counts and the `delivered` event.
  observeBroadcasts(io.of('/').adapter, (room, members, message) => {
    const count = taps.sockets(room, members) + hub.count(room);
    taps.onMessage(room, message);
    hub.deliver(room, message);
    instrumentation.delivered(message, count);
  });
  if (webhooks) {
    // Socket.IO sockets entering and leaving channel rooms (tap placeholders are no sockets).
    const sockets = io.of('/').sockets;
    const userOf = (id: string) => (sockets.get(id)?.data as SessionIdentity | undefined)?.userId;
    io.of('/').adapter.on('join-room', (room: string, id: string) => {
      if (sockets.has(id)) webhooks.occupancy.joined(room, userOf(id));
    });
    io.of('/').adapter.on('leave-room', (room: string, id: string) => {
      if (sockets.has(id)) webhooks.occupancy.left(room, userOf(id));
    });
    webhooks.start();
  }
  // A connection whose unsent output passes limits.maxSocketBufferKb is closed alone.
  const slowConsumers = watchSlowConsumers([socketIoConsumers(io), hubConsumers(hub)], {
    maxBytes: config.limits.maxSocketBufferKb * 1024,
    log,
    onDisconnect: () => metrics.slowConsumerDisconnected(),
  });

  app = createHttpApp({
    config,
    log,
    hooks,
    defaults,
    pipeline,
    idempotency: backend.idempotency,
    pushLimiter: backend.pushLimiter,
    instrumentation,
    state: context.state,
    accepting: context.accepting,
    bus: backend.bus,
    view,
    control,
    metrics,
    watch: async (channel, listener) => (await taps.tap(roomOf(channel), listener)).close,
    node,
  });
  return { http, io, backend, pipeline, slowConsumers, phoenix, socketIoDirect, webhooks };
}
