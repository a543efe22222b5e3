import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { withTimeout } from './timeout.js';

/** The Redis connections of one node. */
export interface RedisClients {
  /** Fail-fast: publishes and history reads. Never queues while disconnected. */
  pub: Redis;
  /** Subscriber connection of the adapter (sharded or classic pub/sub). */
  sub: Redis;
  close(): Promise<void>;
}

/** The Redis Cluster connections of one node. */
export interface RedisClusterClients {
  /** Fail-fast, like {@link RedisClients.pub}: one connection per master, routed by slot. */
  pub: Cluster;
  /** Sharded pub/sub: one subscriber connection per master, following failovers and MOVED. */
  sub: Cluster;
  close(): Promise<void>;
}

/** Credentials and TLS, for both forms (a URL's own password and `rediss://` are honoured too). */
export interface RedisAuth {
  username?: string | undefined;
  password?: string | undefined;
  tls?: boolean | undefined;
}

/** Connection options of every node connection from the settings' credentials and TLS. */
function authOptions(auth: RedisAuth | undefined): RedisOptions {
  const options: RedisOptions = {};
  if (auth?.username !== undefined) options.username = auth.username;
  if (auth?.password !== undefined) options.password = auth.password;
  if (auth?.tls) options.tls = {};
  return options;
}

/**
 * Opens the node's connections and waits until both are ready: joining a room before the
 * subscriber is ready crashed ioredis 5 (ioredis#2037), and an API answer needs a working publisher.
 */
export async function connectRedis(
  url: string,
  options: { commandTimeoutMs: number; connectTimeoutMs?: number; auth?: RedisAuth },
  log: Logger,
): Promise<RedisClients> {
  // Given after the URL: ioredis fills only what the URL left unset (its password wins).
  const auth = authOptions(options.auth);
  // The publish path must not queue: ioredis defaults would deliver a publish made during an
  // outage up to a minute late, or drop it, after the API answered. A timeout means "unknown":
  // the API answers 503 and the caller retries with its idempotency key.
  const pubOptions: RedisOptions = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: options.commandTimeoutMs,
    autoResendUnfulfilledCommands: false,
    // Commands issued in the same tick go out in one write: a join storm's position reads, and
    // concurrent pushes' scripts, cost one syscall per tick instead of one each (measured: a
    // connect and join on Redis took a third less node CPU).
    enableAutoPipelining: true,
    connectionName: 'pushcast-pub',
    lazyConnect: true,
    ...auth,
  };
  const subOptions: RedisOptions = {
    ...auth,
    connectionName: 'pushcast-sub',
    lazyConnect: true,
    maxRetriesPerRequest: null,
  };
  const pub = guard(new Redis(url, pubOptions), log, 'pub');
  const sub = guard(new Redis(url, subOptions), log, 'sub');
  const clients: RedisClients = {
    pub,
    sub,
    async close() {
      await Promise.allSettled([quit(pub), quit(sub)]);
    },
  };
  try {
    await withTimeout(
      Promise.all([pub.connect(), sub.connect()]),
      options.connectTimeoutMs ?? 15_000,
    );
  } catch (err) {
    pub.disconnect();
    sub.disconnect();
    throw new Error(`cannot connect to Redis: ${(err as Error).message}`, { cause: err });
  }
  return clients;
}

/**
 * Opens the node's Redis Cluster connections and waits until both are ready: the publisher with
 * a connection to every master (so the first push does not pay for it), the subscriber with its
 * slot map. The publisher fails fast like the one-Redis form: no offline queue at the cluster
 * level, one command timeout per attempt (a command redirected by a failover is tried again
 * within the caller's own deadline; the publish script refuses to act past it). The subscriber
 * keeps one connection per master for sharded pub/sub and moves its subscriptions to a slot's
 * new master after a failover or a migration (ioredis `shardedSubscribers`).
 */
export async function connectRedisCluster(
  seeds: string[],
  options: { commandTimeoutMs: number; connectTimeoutMs?: number; auth?: RedisAuth },
  log: Logger,
): Promise<RedisClusterClients> {
  const nodes = seeds.map((seed) => {
    const at = seed.lastIndexOf(':');
    return { host: seed.slice(0, at), port: Number(seed.slice(at + 1)) };
  });
  const auth = authOptions(options.auth);
  const common: ClusterOptions = {
    lazyConnect: true,
    slotsRefreshTimeout: 1000,
    // Picks up failovers and migrations nobody was told about (e.g. an idle shard's).
    slotsRefreshInterval: 5000,
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    retryDelayOnTryAgain: 100,
    clusterRetryStrategy: (times: number) => Math.min(100 * times, 2000),
    // With TLS, keep the seeds' host names: certificates name hosts, not addresses.
    ...(auth.tls ? { dnsLookup: (address, callback) => callback(null, address) } : {}),
  };
  const pub = guard(
    new Cluster(nodes, {
      ...common,
      enableOfflineQueue: false,
      // Not here: with ioredis' auto-pipelining a Cluster answered multi-slot pushes 503
      // (test/integration/redis-cluster.test.ts); one Redis keeps it.
      redisOptions: {
        ...auth,
        connectionName: 'pushcast-pub',
        maxRetriesPerRequest: 0,
        commandTimeout: options.commandTimeoutMs,
        autoResendUnfulfilledCommands: false,
      },
    }),
    log,
    'pub',
  );
  const sub = guard(
    new Cluster(nodes, {
      ...common,
      shardedSubscribers: true,
      redisOptions: { ...auth, connectionName: 'pushcast-sub' },
    }),
    log,
    'sub',
  );
  const clients: RedisClusterClients = {
    pub,
    sub,
    async close() {
      await Promise.allSettled([quit(pub), quit(sub)]);
    },
  };
  try {
    await withTimeout(
      (async () => {
        await Promise.all([pub.connect(), sub.connect()]);
        // One round trip to every master: their connections are open before the first push.
        await Promise.all(pub.nodes('master').map((node) => node.ping()));
      })(),
      options.connectTimeoutMs ?? 15_000,
    );
  } catch (err) {
    pub.disconnect();
    sub.disconnect();
    throw new Error(`cannot connect to the Redis Cluster: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return clients;
}

async function quit(client: Redis | Cluster): Promise<void> {
  if (client.status === 'end') return;
  try {
    await withTimeout(client.quit(), 2000);
  } catch {
    client.disconnect();
  }
}

/**
 * Wraps a client so that promises of commands nobody awaits (the adapter's SSUBSCRIBE, SPUBLISH)
 * cannot become unhandled rejections that end the process while Redis is down: each command's
 * promise gets a logging handler, and is returned unchanged to callers that do await it.
 */
function guard<C extends Redis | Cluster>(client: C, log: Logger, role: string): C {
  client.on('error', (err: Error) =>
    log.warn({ err: err.message, role }, 'redis connection error'),
  );
  const fire = new Set([
    'ssubscribe',
    'sunsubscribe',
    'subscribe',
    'unsubscribe',
    'psubscribe',
    'punsubscribe',
    'publish',
    'spublish',
  ]);
  return new Proxy(client, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof prop === 'string' && fire.has(prop) && typeof value === 'function') {
        return (...args: unknown[]) => {
          const result = (value as (...a: unknown[]) => unknown).apply(target, args);
          if (result instanceof Promise)
            result.catch((err: Error) =>
              log.warn({ err: err.message, role, command: prop }, 'redis command failed'),
            );
          return result;
        };
      }
      return value;
    },
  });
}
