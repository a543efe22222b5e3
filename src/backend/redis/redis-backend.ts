import type { Backend, BackendContext } from '../backend.js';
import { installRedisAdapter } from './adapter.js';
import { RedisBus } from './redis-bus.js';
import { connectRedis } from './redis-clients.js';
import { RedisIdempotencyStore } from './redis-idempotency.js';
import { RedisPushLimiter } from './redis-push-limiter.js';

/**
 * Several nodes on one Redis: the sharded (or classic) Socket.IO adapter fans messages out, the
 * publish script keeps history and live order together, idempotency and the push limit are
 * shared. Resolves once both connections are ready and the clocks are in step.
 */
export async function redisBackend(url: string, context: BackendContext): Promise<Backend> {
  const { config, io, history, log } = context;
  const redis = await connectRedis(url, { commandTimeoutMs: config.redis.commandTimeoutMs }, log);
  const subscriptions = await installRedisAdapter(io, redis, config.redis.mode, log);
  const bus = new RedisBus({
    pub: redis.pub,
    sub: redis.sub,
    mode: config.redis.mode,
    keyPrefix: config.redis.keyPrefix,
    commandTimeoutMs: config.redis.commandTimeoutMs,
    subscriptionsLive: () => subscriptions.live(),
    history,
    onClockError: (err) => log.debug({ err }, 'Redis clock re-measure failed'),
  });
  await bus.syncClock();
  return {
    bus,
    idempotency: new RedisIdempotencyStore(
      redis.pub,
      config.redis.keyPrefix,
      config.idempotencyTtlS,
      config.idempotencyKeysPerApiKey,
    ),
    pushLimiter: new RedisPushLimiter(redis.pub, {
      keyPrefix: config.redis.keyPrefix,
      perSecond: config.limits.pushesPerSecond,
      burst: config.limits.pushBurst,
    }),
    ensureSubscribed: (room) => subscriptions.ensureSubscribed(room),
    // Other nodes can be asked while the bus is up.
    clusterReady: () => bus.ready(),
    close: async () => {
      await bus.close();
      await redis.close();
    },
  };
}
