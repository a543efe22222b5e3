import { afterAll, beforeAll } from 'vitest';
import { busContract, REDIS_BUS_KNOWN_FAILURES } from '../contracts/bus.contract.js';
import { redisClusterBusHarness } from '../support/cluster.js';
import { startRedisCluster, type RedisClusterFixture } from '../support/redis.js';

// The Bus contract (test/contracts/bus.contract.ts) held against RedisBus on a real Redis
// Cluster: offsets, history pages, trimming, TTL, position and multi-channel publishes, with
// each channel on the shard of its slot.
let redis: RedisClusterFixture | undefined;
beforeAll(async () => {
  redis = await startRedisCluster({ masters: 3 });
}, 60_000);
afterAll(async () => {
  await redis?.stop();
});

busContract(
  'redis cluster, sharded pub/sub',
  (history) => redisClusterBusHarness(redis!.seeds, history),
  REDIS_BUS_KNOWN_FAILURES,
);
