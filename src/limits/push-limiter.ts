/**
 * The per-API-key push rate limit. `charge` answers 0 when `cost` pushes fit, else the seconds to
 * wait (for `Retry-After`); `refund` gives back pushes charged up front. The memory one limits a
 * single node; the Redis one (backend/redis/redis-push-limiter.ts) the whole cluster.
 */
export interface PushLimiter {
  charge(keyId: string, cost: number): Promise<number>;
  refund(keyId: string, cost: number): Promise<void>;
}
