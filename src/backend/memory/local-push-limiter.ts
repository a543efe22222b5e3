import { RateLimiter } from '../../limits/token-bucket.js';
import type { PushLimiter } from '../../limits/push-limiter.js';

/** The limit kept in this node's memory: a token bucket per key. */
export class LocalPushLimiter implements PushLimiter {
  private readonly buckets: RateLimiter;

  constructor(perSecond: number, burst: number, now?: () => number) {
    this.buckets = new RateLimiter(perSecond, burst, now);
  }

  charge(keyId: string, cost: number): Promise<number> {
    return Promise.resolve(this.buckets.take(keyId, cost));
  }

  refund(keyId: string, cost: number): Promise<void> {
    this.buckets.refund(keyId, cost);
    return Promise.resolve();
  }
}
