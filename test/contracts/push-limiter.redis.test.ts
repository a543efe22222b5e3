import { RedisPushLimiter } from '../../src/backend/redis/redis-push-limiter.js';
import { useRedis } from '../support/redis.js';
import { pushLimiterContract } from './push-limiter.contract.js';

const redis = useRedis();

pushLimiterContract('redis (rate-limiter-flexible)', ({ perSecond, burst }) =>
  Promise.resolve({
    limiter: new RedisPushLimiter(redis.clients.pub, {
      keyPrefix: `ct${Math.random().toString(36).slice(2, 10)}`,
      perSecond,
      burst,
      // Production falls back to the node's memory past 100 ms; on a loaded test machine that
      // would quietly test the fallback instead of Redis.
      timeoutMs: 2000,
    }),
    close: () => Promise.resolve(),
  }),
);
