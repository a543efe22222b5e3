import type { Cluster, Redis } from 'ioredis';
import {
  RateLimiterMemory,
  RateLimiterRedis,
  RateLimiterRes,
  RLWrapperTimeouts,
} from 'rate-limiter-flexible';
import type { PushLimiter } from '../../limits/push-limiter.js';

/**
 * The per-API-key push limit shared by every node through Redis (rate-limiter-flexible), so N
 * nodes let a key push its limit once, not N times. A window of `burst / perSecond` seconds holds
 * at most `burst` pushes: the same sustained rate and burst as the single-node token bucket.
 *
 * While Redis is away each node falls back to the same limit in its own memory (the library's
 * insurance limiter): pushes are refused 503 anyway then (the bus is down), so the fallback only
 * keeps the limiter from failing requests on its own. A Redis that answers slowly (paused, busy)
 * gets the same fallback after `timeoutMs`: the limit must never hold a push up for longer than a
 * blink, or a push accepted just before a drain would miss the pipeline and be answered 503.
 */
export class RedisPushLimiter implements PushLimiter {
  private readonly limiter: RLWrapperTimeouts;
  private readonly burst: number;

  constructor(
    redis: Redis | Cluster,
    options: { keyPrefix: string; perSecond: number; burst: number; timeoutMs?: number },
  ) {
    const window = { points: options.burst, duration: options.burst / options.perSecond };
    this.burst = options.burst;
    this.limiter = new RLWrapperTimeouts({
      limiter: new RateLimiterRedis({
        ...window,
        storeClient: redis,
        // One key per API key, in its own slot: fine on a Redis Cluster.
        keyPrefix: `${options.keyPrefix}:ratelimit`,
        // The publish connection fails fast; a limiter error falls back at once, never waits.
        rejectIfRedisNotReady: true,
      }),
      insuranceLimiter: new RateLimiterMemory(window),
      timeoutMs: options.timeoutMs ?? 100,
    });
  }

  async charge(keyId: string, cost: number): Promise<number> {
    const points = Math.min(cost, this.burst);
    try {
      await this.limiter.consume(keyId, points);
      return 0;
    } catch (res) {
      if (!(res instanceof RateLimiterRes)) throw res;
      // consume() counts the points before it compares: a refused charge takes nothing (as the
      // token bucket), so what was left still fits.
      await this.limiter.reward(keyId, points);
      return Math.max(1, Math.ceil(res.msBeforeNext / 1000));
    }
  }

  async refund(keyId: string, cost: number): Promise<void> {
    // Never more than what the window holds: a refund must not lift the allowance past the burst
    // (nor land, unfloored, in a window that did not see the charge).
    const held = (await this.limiter.get(keyId))?.consumedPoints ?? 0;
    const give = Math.min(cost, held);
    if (give > 0) await this.limiter.reward(keyId, give);
  }
}
