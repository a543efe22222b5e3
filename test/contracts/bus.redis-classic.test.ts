import { afterAll, beforeAll } from 'vitest';
import { redisBusHarness } from './redis-bus-harness.js';
import { startRedis, type RedisFixture } from '../support/redis.js';
import { busContract, REDIS_BUS_KNOWN_FAILURES } from './bus.contract.js';

let redis: RedisFixture | undefined;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

busContract(
  'redis, classic pub/sub',
  (history) => redisBusHarness(redis!.url, 'classic', history),
  REDIS_BUS_KNOWN_FAILURES,
);
