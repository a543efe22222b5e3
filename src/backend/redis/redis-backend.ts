import type { Cluster, Redis } from 'ioredis';
import type { Backend, BackendContext } from '../backend.js';
import { installRedisAdapter } from './adapter.js';
import { RedisBus } from './redis-bus.js';
import { connectRedis, connectRedisCluster, type RedisAuth } from './redis-clients.js';
import { RedisIdempotencyStore } from './redis-idempotency.js';
import { RedisPushLimiter } from './redis-push-limiter.js';
import { RedisWebhookStore } from './redis-webhooks.js';
import { clusterTopology, standaloneTopology, type Topology } from './topology.js';

/** Where Redis is: one server (a URL) or a Redis Cluster (seed nodes). */
export type RedisTarget = { url: string } | { clusterNodes: string[] };

/**
 * Several nodes on Redis (one server, or a Redis Cluster in sharded mode): the sharded (or
 * classic) Socket.IO adapter fans messages out, the publish script keeps history and live order
 * together, idempotency and the push limit are shared. Resolves once the connections are ready,
 * the subscriptions proven and the clocks in step.
 */
export async function redisBackend(target: RedisTarget, context: BackendContext): Promise<Backend> {
  const { config, io, history, log } = context;
  const auth: RedisAuth = {
    username: config.redis.username,
    password: config.redis.password,
    tls: config.redis.tls,
  };
  const connection = { commandTimeoutMs: config.redis.commandTimeoutMs, auth };
  let redis: { pub: Redis | Cluster; sub: Redis | Cluster; close(): Promise<void> };
  let topology: Topology;
  if ('clusterNodes' in target) {
    const clients = await connectRedisCluster(target.clusterNodes, connection, log);
    redis = clients;
    const cluster = clusterTopology(clients.pub, clients.sub);
    // Before the first push: which masters have a replica to wait for.
    await cluster.refreshReplicas();
    topology = cluster;
  } else {
    const clients = await connectRedis(target.url, connection, log);
    redis = clients;
    topology = standaloneTopology(clients.pub, clients.sub);
  }
  // The adapter reads history through the bus, made next (it needs the adapter's subscriptions).
  const made: { bus?: RedisBus } = {};
  let subscriptions: Awaited<ReturnType<typeof installRedisAdapter>>;
  try {
    subscriptions = await installRedisAdapter(io, redis, {
      mode: config.redis.mode,
      topology,
      log,
      commandTimeoutMs: config.redis.commandTimeoutMs,
      history,
      bus: () => made.bus!,
      rejoinOthers: context.rejoinOthers,
    });
  } catch (err) {
    topology.close();
    await redis.close();
    throw err;
  }
  const bus = new RedisBus({
    pub: redis.pub,
    sub: redis.sub,
    topology,
    mode: config.redis.mode,
    keyPrefix: config.redis.keyPrefix,
    commandTimeoutMs: config.redis.commandTimeoutMs,
    subscriptionsLive: () => subscriptions.live(),
    settleRoom: (room) => subscriptions.settle(room),
    history,
    onClockError: (err) => log.debug({ err }, 'Redis clock re-measure failed'),
  });
  made.bus = bus;
  await bus.syncClock();
  const ready = bus;
  return {
    bus: ready,
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
    clusterReady: () => ready.ready(),
    webhookStore: (node, settings) =>
      new RedisWebhookStore(redis.pub, config.redis.keyPrefix, node, settings),
    close: async () => {
      subscriptions.close();
      topology.close();
      await ready.close();
      await redis.close();
    },
  };
}
