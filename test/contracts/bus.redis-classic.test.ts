import { redisBusHarness } from './redis-bus-harness.js';
import { useRedis } from '../support/redis.js';
import { busContract, REDIS_BUS_KNOWN_FAILURES } from './bus.contract.js';

const redis = useRedis();

busContract(
  'redis, classic pub/sub',
  (history) => redisBusHarness(redis.fixture.url, 'classic', history),
  REDIS_BUS_KNOWN_FAILURES,
);
