/**
 * Token buckets per key: `rate` tokens a second up to `burst`. Answers how long to wait when a
 * request does not fit, for `Retry-After`.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes `cost` tokens for `key`; returns 0 when allowed, else the seconds to wait. */
  take(key: string, cost = 1): number {
    const now = this.now();
    let b = this.buckets.get(key);
    if (!b) {
      b = { tokens: this.burst, at: now };
      this.buckets.set(key, b);
    }
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.rate);
    b.at = now;
    // A cost over the burst could never fit: it goes through once the bucket is full and leaves
    // a debt that later requests wait for, so every answered wait is one that will be honoured.
    const needed = Math.min(cost, this.burst);
    if (b.tokens >= needed) {
      b.tokens -= cost;
      return 0;
    }
    return Math.max(1, Math.ceil((needed - b.tokens) / this.rate));
  }

  /** Gives back `cost` tokens taken for `key` (a request charged up front, then charged whole). */
  refund(key: string, cost = 1): void {
    const b = this.buckets.get(key);
    if (b) b.tokens = Math.min(this.burst, b.tokens + cost);
  }

  /** Forgets a key (a socket that disconnected). */
  forget(key: string): void {
    this.buckets.delete(key);
  }
}
