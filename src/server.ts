import { randomBytes } from 'node:crypto';
import { createServer, type RequestListener, type Server as HttpServer } from 'node:http';
import { hostname } from 'node:os';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Server as SocketServer } from 'socket.io';
import { ApiKeyring } from './auth/api-keys.js';
import { callListener, loadHooks, type DefaultAuth, type Hooks } from './auth/hooks.js';
import { TokenVerifier } from './auth/jwt.js';
import { RateLimiter } from './auth/rate-limiter.js';
import { installRedisAdapter } from './cluster/adapter.js';
import { RedisBus } from './cluster/redis-bus.js';
import { RedisPushLimiter } from './cluster/redis-push-limiter.js';
import type { PushLimiter } from './http/push-limiter.js';
import { connectRedis, type RedisClients } from './cluster/redis-clients.js';
import { buildConfig } from './config/load.js';
import type { Config, ConfigInput } from './config/schema.js';
import type { Bus } from './delivery/bus.js';
import { HistoryPolicy } from './delivery/history-policy.js';
import {
  MemoryIdempotencyStore,
  RedisIdempotencyStore,
  type IdempotencyStore,
} from './delivery/idempotency.js';
import { MemoryBus } from './delivery/memory-bus.js';
import { PushPipeline, type PushResult } from './delivery/pipeline.js';
import { PushIdGenerator } from './delivery/push-id.js';
import { unavailable } from './errors.js';
import { builtInApiAuth } from './http/api-auth.js';
import { createHttpApp } from './http/app.js';
import { parsePush } from './http/push-input.js';
import { apiSchemas } from './http/schemas.js';
import { closeSocketsSpread } from './lifecycle/disconnect.js';
import type { LifecycleState } from './lifecycle/state.js';
import { createLogger } from './logger.js';
import { observeBroadcasts } from './realtime/observe.js';
import { watchSlowConsumers, type SlowConsumerWatch } from './realtime/slow-consumers.js';
import { RoomTaps } from './realtime/room-taps.js';
import { Registry } from 'prom-client';
import { ClusterView, type NodeBasics } from './cluster/cluster-view.js';
import { roomOf } from './delivery/names.js';
import { PushMetrics } from './metrics/metrics.js';
import { VERSION } from './version.js';
import { builtInJoinAuth, builtInSocketAuth } from './realtime/socket-auth.js';
import { createSocketServer } from './realtime/socket-server.js';

/** Options for embedding beyond the settings. */
export interface PushServerOptions {
  logger?: Logger;
  /** Hooks given in code (instead of, or on top of, the `hooks` module setting). */
  hooks?: Hooks;
  /** Prometheus registry for the node's metrics (default: a fresh one per node). */
  registry?: Registry;
}

/** A push as the embedding API takes it (same rules as `POST /api/push`). */
export interface PushInput {
  channel: string | string[];
  event: string;
  data: unknown;
}

/** A running (or startable) pushcast node. */
export interface PushServer {
  readonly config: Config;
  readonly node: string;
  readonly log: Logger;
  state(): LifecycleState;
  /** Starts listening; resolves with the bound address once ready. */
  start(): Promise<{ url: string; port: number }>;
  /** Drains and stops (see DESIGN.md "Lifecycle"); `drained` is false if the drain timed out. */
  stop(): Promise<{ drained: boolean; inflightLeft: number }>;
  /** Publishes a push as the API would (without API-key auth). */
  push(input: PushInput): Promise<PushResult>;
  /** The Socket.IO server (available after start). */
  readonly io: SocketServer;
  /** The HTTP server (available after start). */
  readonly http: HttpServer;
}

/** Builds a pushcast node from settings (validated with the same schema as the process). */
export function createPushServer(
  input: ConfigInput = {},
  options: PushServerOptions = {},
): PushServer {
  const { config } = buildConfig(input);
  const node = `${hostname()}-${randomBytes(3).toString('hex')}`;
  const log = options.logger ?? createLogger(config.logLevel, node);
  let state: LifecycleState = 'starting';
  // Readiness drops at the first signal; requests and connections are refused only after the
  // shutdown delay, while the load balancer takes the node out of rotation.
  let accepting = false;
  let http: HttpServer | undefined;
  let io: SocketServer | undefined;
  let redis: RedisClients | undefined;
  let bus: Bus | undefined;
  let pipeline: PushPipeline | undefined;
  let slowConsumers: SlowConsumerWatch | undefined;
  const schemas = apiSchemas(config.limits);
  const history = new HistoryPolicy(config.history);

  let starting: Promise<unknown> | undefined;
  function start(): Promise<{ url: string; port: number }> {
    if (state !== 'starting' || starting) throw new Error('pushcast: start() called twice');
    const run = boot();
    starting = run;
    return run;
  }

  async function boot(): Promise<{ url: string; port: number }> {
    const hooks: Hooks = {
      ...(config.hooks ? await loadHooks(config.hooks) : {}),
      ...options.hooks,
    };
    const verifier = new TokenVerifier(config.jwt);
    const defaults: DefaultAuth = {
      authenticateSocket: builtInSocketAuth(verifier),
      authorizeJoin: builtInJoinAuth(config.publicChannels),
      authenticateApi: builtInApiAuth(new ApiKeyring(config.apiKeys)),
    };
    // The request listener must exist before Socket.IO attaches: engine.io then takes over the
    // listeners and forwards only requests outside its path (polling would otherwise get a 404).
    let app: RequestListener = (_req, res) => void res.writeHead(503).end();
    const server = createServer((req, res) => app(req, res));
    http = server;
    let ensureSubscribed: (room: string) => Promise<void> = () => Promise.resolve();
    const taps = new RoomTaps(
      () => sockets.of('/').adapter,
      (room) => ensureSubscribed(room),
    );
    const sockets: SocketServer = createSocketServer(server, {
      config,
      log,
      hooks,
      defaults,
      get bus() {
        return bus!;
      },
      history,
      taps,
      ensureSubscribed: (room) => ensureSubscribed(room),
      eventLimiter: new RateLimiter(
        config.limits.socketEventsPerSecond,
        config.limits.socketEventBurst,
      ),
      accepting: () => accepting,
    });
    io = sockets;

    let idempotency: IdempotencyStore;
    let pushLimiter: PushLimiter | undefined;
    if (config.redisUrl) {
      redis = await connectRedis(
        config.redisUrl,
        { commandTimeoutMs: config.redis.commandTimeoutMs },
        log,
      );
      const wiring = await installRedisAdapter(sockets, redis, config.redis.mode, log);
      ensureSubscribed = (room) => wiring.ensureSubscribed(room);
      const redisBus = new RedisBus({
        pub: redis.pub,
        sub: redis.sub,
        mode: config.redis.mode,
        keyPrefix: config.redis.keyPrefix,
        commandTimeoutMs: config.redis.commandTimeoutMs,
        subscriptionsLive: () => wiring.live(),
        history,
      });
      await redisBus.syncClock();
      bus = redisBus;
      idempotency = new RedisIdempotencyStore(
        redis.pub,
        config.redis.keyPrefix,
        config.idempotencyTtlS,
        config.idempotencyKeysPerApiKey,
      );
      // The per-key push limit is shared by every node through Redis.
      pushLimiter = new RedisPushLimiter(redis.pub, {
        keyPrefix: config.redis.keyPrefix,
        perSecond: config.limits.pushesPerSecond,
        burst: config.limits.pushBurst,
      });
    } else {
      bus = new MemoryBus(
        (room, message) => {
          sockets.to(room).emit('msg', message);
        },
        history,
        { maxBytes: config.memory.historyMb * MB },
      );
      idempotency = new MemoryIdempotencyStore(
        config.idempotencyTtlS,
        config.memory.idempotencyMb * MB,
      );
    }
    const startedAt = Date.now();
    const view: ClusterView = new ClusterView(
      sockets,
      (): NodeBasics => ({
        id: node,
        version: VERSION,
        uptimeS: Math.round((Date.now() - startedAt) / 1000),
        state,
        inflight: pipeline?.inflightCount ?? 0,
        rates: {
          requested10s: metrics.requestedRate.rate(10),
          requested60s: metrics.requestedRate.rate(59),
          delivered10s: metrics.deliveredRate.rate(10),
          delivered60s: metrics.deliveredRate.rate(59),
        },
      }),
      // Several nodes only over Redis; they can be asked while the bus is up.
      config.redisUrl ? () => bus?.ready() ?? false : undefined,
    );
    const metrics: PushMetrics = new PushMetrics(options.registry ?? new Registry(), {
      sockets: () => sockets.of('/').sockets.size,
      subscriptions: () => view.occupancy().subscriptions,
      inflight: () => pipeline?.inflightCount ?? 0,
      draining: () => state === 'draining',
      redisUp: () => bus?.ready() ?? false,
    });
    // Slow consumers: a socket whose unsent output passes limits.maxSocketBufferKb is closed alone.
    slowConsumers = watchSlowConsumers(sockets, {
      maxBytes: config.limits.maxSocketBufferKb * 1024,
      log,
      onDisconnect: () => metrics.slowConsumerDisconnected(),
    });
    pipeline = new PushPipeline(bus, new PushIdGenerator(), config.maxInflight, (result) => {
      metrics.pushRequested();
      if (!hooks.requested) return;
      const push = {
        id: result.id,
        channels: result.channel,
        event: result.event,
        ts: result.ts,
      };
      setImmediate(() => callListener(log, () => hooks.requested?.(push, { node })));
    });
    // After io.adapter(): the adapter instance is replaced when the Redis adapter is installed.
    observeBroadcasts(sockets.of('/').adapter, (room, members, message) => {
      const count = taps.sockets(room, members);
      taps.onMessage(room, message);
      metrics.pushDelivered(count, message.ts);
      if (hooks.delivered && count > 0) {
        const push = {
          id: message.id,
          channels: [message.channel],
          event: message.event,
          ts: message.ts,
        };
        setImmediate(() =>
          callListener(log, () =>
            hooks.delivered?.(push, { node, channel: message.channel, count }),
          ),
        );
      }
    });
    app = createHttpApp({
      config,
      log,
      hooks,
      defaults,
      pipeline,
      idempotency,
      state: () => state,
      accepting: () => accepting,
      bus: () => bus!,
      view: () => view,
      metrics,
      ...(pushLimiter ? { pushLimiter } : {}),
      watch: async (channel, listener) => (await taps.tap(roomOf(channel), listener)).close,
      node,
    });

    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    state = 'ready';
    accepting = true;
    const port = (server.address() as AddressInfo).port;
    const shownHost = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
    log.info(
      {
        port,
        redis: Boolean(config.redisUrl),
        mode: config.redisUrl ? config.redis.mode : 'memory',
      },
      'pushcast ready',
    );
    return { url: `http://${shownHost}:${port}`, port };
  }

  async function stop(): Promise<{ drained: boolean; inflightLeft: number }> {
    if (state === 'stopped' || state === 'draining') return { drained: true, inflightLeft: 0 };
    // A stop during start waits for the start to finish, then drains what it built.
    if (state === 'starting' && starting) await starting.catch(() => undefined);
    state = 'draining';
    log.info('draining');
    const started = Date.now();
    if (config.shutdown.delayMs > 0) await sleep(config.shutdown.delayMs);
    accepting = false;
    // Stop taking connections first, so the load balancer sends new ones to the other nodes.
    const closed = http ? new Promise<void>((r) => http!.close(() => r())) : Promise.resolve();
    const drained = pipeline ? await pipeline.drain(config.shutdown.drainTimeoutMs) : true;
    const inflightLeft = pipeline?.inflightCount ?? 0;
    if (!drained) log.error({ inflight: inflightLeft }, 'drain timed out with pushes in flight');
    slowConsumers?.stop();
    if (io) {
      // Without PUSHCAST_DISCONNECT_ON_SHUTDOWN the sockets would simply die with the process;
      // an embedded server closes them all at once, the same way.
      const spreadMs = config.shutdown.disconnect ? config.shutdown.disconnectSpreadMs : 0;
      log.info({ sockets: await closeSocketsSpread(io, spreadMs) }, 'sockets closed');
      await io.close().catch(() => {});
    }
    http?.closeAllConnections();
    await closed;
    await bus?.close();
    await redis?.close();
    state = 'stopped';
    log.info({ drained, inflightLeft, ms: Date.now() - started }, 'stopped');
    return { drained, inflightLeft };
  }

  async function push(input: PushInput): Promise<PushResult> {
    if (!pipeline) throw unavailable('starting');
    return pipeline.push(parsePush(input, schemas, config.limits));
  }

  return {
    config,
    node,
    log,
    state: () => state,
    start,
    stop,
    push,
    get io() {
      if (!io) throw new Error('pushcast: not started');
      return io;
    },
    get http() {
      if (!http) throw new Error('pushcast: not started');
      return http;
    },
  };
}

const MB = 1024 * 1024;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
