import { z } from 'zod';

/** Channel-name pattern: a channel name, or a prefix ending in `*` (`org:7:*`, or `*` for all). */
const channelPattern = z
  .string()
  .regex(/^[A-Za-z0-9_\-:.@=]{0,200}\*?$/, 'a channel name, or a prefix ending in *')
  .min(1);

const apiKeySchema = z.object({
  /** The secret itself (at least 16 characters). */
  key: z.string().min(16, 'API keys are at least 16 characters'),
  /** A name for logs and metrics; never the secret. */
  id: z.string().min(1).max(100).optional(),
  /** Channel patterns this key may push to; omitted = every channel. */
  channels: z.array(channelPattern).optional(),
  /**
   * Scopes this key holds; omitted = every scope (`push`, `read`, `admin`). `control` (the
   * disconnect and unsubscribe routes) is held by `admin` keys too.
   */
  scopes: z.array(z.enum(['push', 'read', 'admin', 'control'])).optional(),
});

const historyOverrideSchema = z.object({
  pattern: channelPattern,
  /** 0 turns history off for these channels. */
  size: z.number().int().min(0).max(1_000_000).optional(),
  ttlS: z.number().int().min(1).optional(),
});

/** Every setting of the server, with its default. */
export const configSchema = z
  .object({
    env: z.enum(['development', 'production', 'test']).default('development'),
    host: z.string().min(1).default('0.0.0.0'),
    port: z.number().int().min(0).max(65535).default(4000),
    /**
     * Connections the kernel queues while the node is busy accepting (`listen` backlog, capped by
     * net.core.somaxconn). Node's default, 511, overflows when thousands of clients of a node that
     * died reconnect at once: a dropped SYN is retried by the client's kernel only after 1 s, then 3 s.
     */
    listenBacklog: z.number().int().min(1).default(4096),
    /** Unset: a single node, everything in memory. */
    redisUrl: z
      .string()
      .regex(/^rediss?:\/\//, 'a redis:// or rediss:// URL')
      .optional(),
    /**
     * Redis Cluster seed nodes (`host:port`); exclusive with `redisUrl`. The rest of the cluster is
     * discovered from them. Sharded pub/sub only.
     */
    redisClusterNodes: z
      .array(z.string().regex(/^[A-Za-z0-9_.-]{1,253}:\d{1,5}$/, 'host:port entries'))
      .min(1)
      .optional(),
    redis: z
      .object({
        /** `sharded`: Redis 7 sharded pub/sub, a node only receives channels it has subscribers on. */
        mode: z.enum(['sharded', 'classic']).default('sharded'),
        keyPrefix: z
          .string()
          .regex(/^[A-Za-z0-9_\-:.]{1,50}$/)
          .default('pc'),
        /** Publish-path command timeout: past it the push is answered 503 (outcome unknown). */
        commandTimeoutMs: z.number().int().min(50).default(1000),
        /** ACL user and password (both forms; a password in `redisUrl` is used when unset here). */
        username: z.string().min(1).optional(),
        password: z.string().min(1).optional(),
        /** TLS to every Redis node (the URL form also turns it on with `rediss://`). */
        tls: z.boolean().default(false),
      })
      .prefault({}),
    apiKeys: z.array(apiKeySchema).default([]),
    jwt: z
      .object({
        secret: z.string().min(32, 'JWT secrets are at least 32 characters').optional(),
        publicKey: z.string().includes('-----BEGIN', { message: 'a PEM public key' }).optional(),
        jwksFile: z.string().min(1).optional(),
        algorithms: z
          .array(
            z.enum([
              'HS256',
              'HS384',
              'HS512',
              'RS256',
              'RS384',
              'RS512',
              'PS256',
              'ES256',
              'ES384',
              'EdDSA',
            ]),
          )
          .min(1)
          .optional(),
        /** Allowed clock skew for `exp`/`nbf`, in seconds. */
        clockToleranceS: z.number().int().min(0).max(300).default(0),
        /** Set: a token's `iss` must equal it. */
        issuer: z.string().min(1).optional(),
        /** Set: a token's `aud` must name it (or one of them). */
        audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
        /** Accept tokens without `exp` (they never expire). Off: such tokens are refused. */
        allowNoExp: z.boolean().default(false),
      })
      .prefault({}),
    publicChannels: z.array(channelPattern).default([]),
    socketPath: z
      .string()
      .regex(/^\/[A-Za-z0-9_\-./]*$/, 'a path starting with /')
      .default('/socket.io'),
    /**
     * The Socket.IO transports served: `websocket` alone refuses HTTP long-polling (clients must
     * connect with `transports: ['websocket']`), which saves the upgrade round trips and the
     * sticky sessions polling needs behind a load balancer.
     */
    socketTransports: z
      .array(z.enum(['polling', 'websocket']))
      .min(1)
      .default(['polling', 'websocket'])
      .transform((t) => [...new Set(t)]),
    /**
     * Socket.IO clients that open a WebSocket directly (`transports: ['websocket']`) are served by
     * pushcast's own WebSocket endpoint, lighter per connection than engine.io's; off, engine.io
     * serves them as it serves long-polling. The same protocol either way.
     */
    socketDirect: z.boolean().default(true),
    /** Phoenix-protocol WebSocket endpoint for PushEx clients (pushex.js): `<path>/websocket`. '' turns it off. */
    phoenixPath: z
      .string()
      .regex(/^(\/[A-Za-z0-9_\-./]*)?$/, 'a path starting with /, or empty to turn it off')
      .default('/push_socket'),
    hooks: z.string().min(1).optional(),
    /** `*` or a list of origins allowed to open sockets from a browser. */
    corsOrigins: z.union([z.literal('*'), z.array(z.string().min(1))]).default('*'),
    logLevel: z
      .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
      .default('info'),
    limits: z
      .object({
        maxBodyBytes: z
          .number()
          .int()
          .min(1024)
          .default(4 * 1024 * 1024),
        maxDataBytes: z
          .number()
          .int()
          .min(1)
          .default(64 * 1024),
        /** How deep `data` may nest (arrays and objects); deeper is refused before it is parsed. */
        maxDataDepth: z.number().int().min(1).max(1000).default(64),
        maxChannelsPerPush: z.number().int().min(1).max(10_000).default(100),
        maxBatch: z.number().int().min(1).max(10_000).default(100),
        maxChannelsPerSocket: z.number().int().min(1).default(100),
        /** Per API key: sustained pushes per second and the burst above it. */
        pushesPerSecond: z.number().positive().default(1000),
        pushBurst: z.number().int().min(1).default(2000),
        /** Per socket: join/leave/refresh events per second and the burst above it. */
        socketEventsPerSecond: z.number().positive().default(20),
        socketEventBurst: z.number().int().min(1).default(50),
        /** Sockets one node holds at most; past it new connections are refused (`node_full`). */
        maxConnections: z.number().int().min(1).default(50_000),
        /** Sockets of one user (`sub`) on one node at most (`too_many_user_connections`). */
        maxConnectionsPerUser: z.number().int().min(1).default(100),
        /** New connections one node admits per second (and as a burst): `connect_rate_limited`. */
        connectRatePerSecond: z.number().positive().default(1000),
        /** A socket whose unsent output passes this many KiB is disconnected alone. */
        maxSocketBufferKb: z.number().int().min(1).default(1024),
      })
      .prefault({}),
    /** Bounds of what a single node keeps in memory (memory mode: no Redis). */
    memory: z
      .object({
        /** All channels' history together; past it the least recently pushed channels go. */
        historyMb: z.number().positive().default(256),
        /** All stored Idempotency-Key answers together; past it the oldest go. */
        idempotencyMb: z.number().positive().default(64),
      })
      .prefault({}),
    /** Idempotency-Keys one API key may hold at once within the window (Redis mode). */
    idempotencyKeysPerApiKey: z.number().int().min(1).default(1_000_000),
    idempotencyTtlS: z
      .number()
      .int()
      .min(1)
      .default(24 * 3600),
    history: z
      .object({
        size: z.number().int().min(0).max(1_000_000).default(100),
        ttlS: z.number().int().min(1).default(300),
        channels: z.array(historyOverrideSchema).default([]),
      })
      .prefault({}),
    /** Accepted pushes not yet handed to the bus; past it the API answers 503. */
    maxInflight: z.number().int().min(1).default(50_000),
    /**
     * Webhooks for occupancy and presence (`channel_occupied`, `channel_vacated`,
     * `member_added`, `member_removed`), sent once per cluster, signed, batched, retried.
     */
    webhooks: z
      .object({
        /** Where events are POSTed; unset: no webhooks. */
        url: z.url({ protocol: /^https?$/ }).optional(),
        /** HMAC-SHA256 key of `X-Pushcast-Signature`; required with a URL. */
        secret: z.string().min(16).optional(),
        /** The events sent (default: all four). */
        events: z
          .array(z.enum(['channel_occupied', 'channel_vacated', 'member_added', 'member_removed']))
          .min(1)
          .default(['channel_occupied', 'channel_vacated', 'member_added', 'member_removed']),
        /** `channel_vacated` / `member_removed` wait this long and are dropped if the channel or member comes back. */
        vacateDelayMs: z.number().int().min(0).default(3000),
        /** Events per request at most. */
        batchMax: z.number().int().min(1).max(1000).default(100),
        /** Undelivered events kept at most; past it the oldest are dropped (metric and log line). */
        maxPending: z.number().int().min(1).default(10_000),
        /** A request not answered 2xx within this long has failed (it is retried). */
        timeoutMs: z.number().int().min(100).default(5000),
        /** A node not heard from for this long is gone: its members' events fire (Redis only). */
        nodeTimeoutMs: z.number().int().min(1000).default(10_000),
      })
      .prefault({}),
    shutdown: z
      .object({
        delayMs: z.number().int().min(0).default(0),
        drainTimeoutMs: z.number().int().min(0).default(10_000),
        disconnect: z.boolean().default(false),
        disconnectSpreadMs: z.number().int().min(0).default(1000),
      })
      .prefault({}),
  })
  .strict();

/** Settings as written (defaults optional). */
export type ConfigInput = z.input<typeof configSchema>;
/** Settings after validation, every default filled in. */
export type Config = z.infer<typeof configSchema>;
/** One API key entry. */
export type ApiKeyConfig = z.infer<typeof apiKeySchema>;
