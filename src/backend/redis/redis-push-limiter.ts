import type { Cluster, Redis } from 'ioredis';
import {
  RateLimiterMemory,
  RateLimiterRedis,
  RateLimiterRes,
  RLWrapperTimeouts,
} from 'rate-limiter-flexible';
import type { PushLimiter } from '../../limits/push-limiter.js';

/** A lease never holds more than this many pushes, however large the burst. */
const MAX_LEASE = 100;

/** The pushes a node holds of a key's current window: taken from Redis, not yet spent. */
interface Lease {
  /** Until when the window they belong to lasts (this node's clock, a little early). */
  until: number;
  /** Taken and not spent: the next charges are answered from these without Redis. */
  tokens: number;
  /** Spent by charges in this window: what a refund may give back. */
  spent: number;
}

/**
 * The per-API-key push limit shared by every node through Redis (rate-limiter-flexible), so N
 * nodes let a key push its limit once, not N times. A window of `burst / perSecond` seconds holds
 * at most `burst` pushes: the same sustained rate and burst as the single-node token bucket.
 *
 * A node that charges a key takes a lease with the charge: up to {@link MAX_LEASE} pushes more
 * (a 64th of the burst), and answers the key's next charges from it without a Redis round trip
 * until it is spent or the window ends. Nothing is ever let through beyond the burst across the
 * cluster; the price is that pushes one node holds cannot be spent by another, so a key pushing
 * through several nodes at once may be refused up to a lease per other node early in a window.
 * A burst under 64 takes no leases: every charge asks Redis, exactly as before.
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
  private readonly lease: number;
  private readonly leases = new Map<string, Lease>();
  /** Keys with a lease on its way from Redis: charges meanwhile take none of their own. */
  private readonly asking = new Set<string>();
  /** When ended leases may next be looked for (see {@link hold}). */
  private nextPrune = 0;

  constructor(
    redis: Redis | Cluster,
    options: {
      keyPrefix: string;
      perSecond: number;
      burst: number;
      timeoutMs?: number;
      /** Pushes taken ahead per Redis charge (default: a 64th of the burst, at most 100). */
      lease?: number;
    },
  ) {
    const window = { points: options.burst, duration: options.burst / options.perSecond };
    this.burst = options.burst;
    this.lease = options.lease ?? Math.min(MAX_LEASE, Math.floor(options.burst / 64));
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
    if (this.lease === 0) return this.take(keyId, points);
    const held = this.held(keyId);
    if (held && held.tokens >= points) {
      held.tokens -= points;
      held.spent += points;
      return 0;
    }
    // One lease on its way per key: concurrent charges that find none each taking their own
    // would hold many leases on one node, and refuse the key on the others early.
    const lease = this.asking.has(keyId) ? 0 : this.lease;
    if (lease > 0) this.asking.add(keyId);
    // The window's end as Redis counts it, seen from before the question: a lease never
    // outlives the window it was taken from.
    const asked = Date.now();
    const wanted = points + lease;
    try {
      const res = await this.limiter.consume(keyId, wanted);
      this.hold(keyId, asked + res.msBeforeNext, lease, points);
      return 0;
    } catch (res) {
      if (!(res instanceof RateLimiterRes)) throw res;
      // consume() counts before it compares. Past the burst by no more than the lease: the
      // charge fits, and only the excess goes back (a smaller lease). Further: nothing is taken.
      const over = res.consumedPoints - this.burst;
      if (over <= lease) {
        await this.limiter.reward(keyId, over);
        this.hold(keyId, asked + res.msBeforeNext, lease - over, points);
        return 0;
      }
      await this.limiter.reward(keyId, wanted);
      return Math.max(1, Math.ceil(res.msBeforeNext / 1000));
    } finally {
      if (lease > 0) this.asking.delete(keyId);
    }
  }

  async refund(keyId: string, cost: number): Promise<void> {
    if (this.lease > 0) {
      // Back into the lease, never more than this node spent in the window: the pushes were
      // taken from Redis for this node, and only a charge in this window can be refunded.
      const held = this.held(keyId);
      if (!held) return;
      const give = Math.min(cost, held.spent);
      held.spent -= give;
      held.tokens += give;
      return;
    }
    // Never more than what the window holds: a refund must not lift the allowance past the burst
    // (nor land, unfloored, in a window that did not see the charge).
    const held = (await this.limiter.get(keyId))?.consumedPoints ?? 0;
    const give = Math.min(cost, held);
    if (give > 0) await this.limiter.reward(keyId, give);
  }

  /** Charges `points` in Redis alone: 0, or the seconds to wait (a refused charge takes nothing). */
  private async take(keyId: string, points: number): Promise<number> {
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

  /** The key's lease in the current window, if there is one (an ended one is dropped). */
  private held(keyId: string): Lease | undefined {
    const lease = this.leases.get(keyId);
    if (lease && lease.until <= Date.now()) {
      this.leases.delete(keyId);
      return undefined;
    }
    return lease;
  }

  /** Adds `tokens` taken and `spent` charged to the key's lease, opening one until `until`. */
  private hold(keyId: string, until: number, tokens: number, spent: number): void {
    const lease = this.held(keyId);
    if (lease) {
      lease.tokens += tokens;
      lease.spent += spent;
      return;
    }
    // Ended leases of keys that stopped pushing go when the map grows (keys are few: one per
    // API key, but a key hook may name many), at most once a second: not a scan per new key.
    const now = Date.now();
    if (this.leases.size >= 10_000 && now >= this.nextPrune) {
      this.nextPrune = now + 1000;
      for (const [id, old] of this.leases) if (old.until <= now) this.leases.delete(id);
    }
    this.leases.set(keyId, { until, tokens, spent });
  }
}
