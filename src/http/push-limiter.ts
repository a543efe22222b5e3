import { RateLimiter } from '../auth/rate-limiter.js';

/**
 * The per-API-key push rate limit. `charge` answers 0 when `cost` pushes fit, else the seconds to
 * wait (for `Retry-After`); `refund` gives back pushes charged up front. The memory one limits a
 * single node; the Redis one (cluster/redis-push-limiter.ts) the whole cluster.
 */
export interface PushLimiter {
  charge(keyId: string, cost: number): Promise<number>;
  refund(keyId: string, cost: number): Promise<void>;
}

/** The limit kept in this node's memory: a token bucket per key. */
export class LocalPushLimiter implements PushLimiter {
  private readonly buckets: RateLimiter;

  constructor(perSecond: number, burst: number) {
    this.buckets = new RateLimiter(perSecond, burst);
  }

  charge(keyId: string, cost: number): Promise<number> {
    return Promise.resolve(this.buckets.take(keyId, cost));
  }

  refund(keyId: string, cost: number): Promise<void> {
    this.buckets.refund(keyId, cost);
    return Promise.resolve();
  }
}
