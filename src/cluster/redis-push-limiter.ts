import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { PushLimiter } from '../http/push-limiter.js';

/**
 * The per-API-key push limit shared by every node through Redis (rate-limiter-flexible), so N
 * nodes let a key push its limit once, not N times. A window of `burst / perSecond` seconds holds
 * at most `burst` pushes: the same sustained rate and burst as the single-node token bucket.
 *
 * While Redis is away each node falls back to the same limit in its own memory (the library's
 * insurance limiter): pushes are refused 503 anyway then (the bus is down), so the fallback only
 * keeps the limiter from failing requests on its own.
 */
export class RedisPushLimiter implements PushLimiter {
  private readonly limiter: RateLimiterRedis;

  constructor(redis: Redis, options: { keyPrefix: string; perSecond: number; burst: number }) {
    const window = { points: options.burst, duration: options.burst / options.perSecond };
    this.limiter = new RateLimiterRedis({
      ...window,
      storeClient: redis,
      // One key per API key, in its own slot: fine on a Redis Cluster.
      keyPrefix: `${options.keyPrefix}:ratelimit`,
      // The publish connection fails fast; a limiter error falls back at once, never waits.
      rejectIfRedisNotReady: true,
      insuranceLimiter: new RateLimiterMemory(window),
    });
  }

  async charge(keyId: string, cost: number): Promise<number> {
    try {
      await this.limiter.consume(keyId, Math.min(cost, this.limiter.points));
      return 0;
    } catch (res) {
      if (res instanceof RateLimiterRes) return Math.max(1, Math.ceil(res.msBeforeNext / 1000));
      throw res;
    }
  }

  async refund(keyId: string, cost: number): Promise<void> {
    await this.limiter.reward(keyId, cost);
  }
}
