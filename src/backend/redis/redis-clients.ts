import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';

/** The Redis connections of one node. */
export interface RedisClients {
  /** Fail-fast: publishes and history reads. Never queues while disconnected. */
  pub: Redis;
  /** Subscriber connection of the adapter (sharded or classic pub/sub). */
  sub: Redis;
  close(): Promise<void>;
}

/**
 * Opens the node's connections and waits until both are ready: joining a room before the
 * subscriber is ready crashed ioredis 5 (ioredis#2037), and an API answer needs a working publisher.
 */
export async function connectRedis(
  url: string,
  options: { commandTimeoutMs: number; connectTimeoutMs?: number },
  log: Logger,
): Promise<RedisClients> {
  // The publish path must not queue: ioredis defaults would deliver a publish made during an
  // outage up to a minute late, or drop it, after the API answered. A timeout means "unknown":
  // the API answers 503 and the caller retries with its idempotency key.
  const pubOptions: RedisOptions = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: options.commandTimeoutMs,
    autoResendUnfulfilledCommands: false,
    connectionName: 'pushcast-pub',
    lazyConnect: true,
  };
  const subOptions: RedisOptions = {
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

async function quit(client: Redis): Promise<void> {
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
function guard(client: Redis, log: Logger, role: string): Redis {
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

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}
