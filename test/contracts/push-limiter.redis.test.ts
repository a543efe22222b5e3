import { pino } from 'pino';
import { afterAll, beforeAll } from 'vitest';
import { connectRedis, type RedisClients } from '../../src/backend/redis/redis-clients.js';
import { RedisPushLimiter } from '../../src/backend/redis/redis-push-limiter.js';
import { startRedis, type RedisFixture } from '../support/redis.js';
import { pushLimiterContract } from './push-limiter.contract.js';

let redis: RedisFixture | undefined;
let clients: RedisClients | undefined;
beforeAll(async () => {
  redis = await startRedis();
  clients = await connectRedis(redis.url, { commandTimeoutMs: 2000 }, pino({ level: 'silent' }));
});
afterAll(async () => {
  await clients?.close();
  await redis?.stop();
});

pushLimiterContract('redis (rate-limiter-flexible)', ({ perSecond, burst }) =>
  Promise.resolve({
    limiter: new RedisPushLimiter(clients!.pub, {
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
