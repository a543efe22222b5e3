import type { Redis } from 'ioredis';

/** A stored API answer, replayed for a repeated Idempotency-Key. */
export interface StoredResponse {
  status: number;
  body: unknown;
}

/** What `begin` found for a key. */
export type IdempotencyState =
  | { state: 'new' }
  | { state: 'done'; response: StoredResponse }
  | { state: 'busy' }
  /** The key is held by a request with another fingerprint (another body or route). */
  | { state: 'mismatch' };

/**
 * Idempotency keys (per API key): the first request with a key runs; later ones get its answer.
 * Only successful answers are kept, so a request that failed can be retried with the same key.
 * A key is bound to its request's fingerprint: reused for another request, it is refused rather
 * than answered with the first request's result.
 */
export interface IdempotencyStore {
  begin(key: string, fingerprint: string): Promise<IdempotencyState>;
  complete(key: string, fingerprint: string, response: StoredResponse): Promise<void>;
  abort(key: string): Promise<void>;
}

/** Idempotency in this process's memory (single node). */
export class MemoryIdempotencyStore implements IdempotencyStore {
  private readonly entries = new Map<
    string,
    { value: StoredResponse | 'pending'; fingerprint: string; expires: number }
  >();

  constructor(
    private readonly ttlS: number,
    private readonly now: () => number = Date.now,
  ) {}

  begin(key: string, fingerprint: string): Promise<IdempotencyState> {
    this.sweep();
    const now = this.now();
    let e = this.entries.get(key);
    // The sweep stops at the first live entry; one behind it may have expired already.
    if (e && e.expires <= now) {
      this.entries.delete(key);
      e = undefined;
    }
    if (!e) {
      this.entries.set(key, { value: 'pending', fingerprint, expires: now + this.ttlS * 1000 });
      return Promise.resolve({ state: 'new' });
    }
    if (e.fingerprint !== fingerprint) return Promise.resolve({ state: 'mismatch' });
    return Promise.resolve(
      e.value === 'pending' ? { state: 'busy' } : { state: 'done', response: e.value },
    );
  }

  complete(key: string, fingerprint: string, response: StoredResponse): Promise<void> {
    // Re-inserted so the map stays in expiry order, which the sweep relies on.
    this.entries.delete(key);
    this.entries.set(key, { value: response, fingerprint, expires: this.now() + this.ttlS * 1000 });
    return Promise.resolve();
  }

  abort(key: string): Promise<void> {
    this.entries.delete(key);
    return Promise.resolve();
  }

  private sweep(): void {
    // Map keeps insertion order, and entries only move forward in time: stop at the first live one.
    const now = this.now();
    for (const [k, e] of this.entries) {
      if (e.expires > now) break;
      this.entries.delete(k);
    }
  }
}

/** What the Redis store keeps under a key: the fingerprint, and the answer once there is one. */
interface RedisEntry {
  f: string;
  r?: StoredResponse;
}

/** Idempotency shared by the cluster, in Redis (`SET NX` claims a key while its request runs). */
export class RedisIdempotencyStore implements IdempotencyStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly ttlS: number,
  ) {}

  async begin(key: string, fingerprint: string): Promise<IdempotencyState> {
    const k = this.key(key);
    // A claim expires on its own if its node dies mid-request.
    const claim: RedisEntry = { f: fingerprint };
    const claimed = await this.redis.set(k, JSON.stringify(claim), 'EX', 60, 'NX');
    if (claimed === 'OK') return { state: 'new' };
    const value = await this.redis.get(k);
    if (value === null) return { state: 'busy' };
    const entry = JSON.parse(value) as RedisEntry;
    if (entry.f !== fingerprint) return { state: 'mismatch' };
    return entry.r ? { state: 'done', response: entry.r } : { state: 'busy' };
  }

  async complete(key: string, fingerprint: string, response: StoredResponse): Promise<void> {
    const entry: RedisEntry = { f: fingerprint, r: response };
    await this.redis.set(this.key(key), JSON.stringify(entry), 'EX', this.ttlS);
  }

  async abort(key: string): Promise<void> {
    await this.redis.del(this.key(key));
  }

  private key(key: string): string {
    return `${this.prefix}:idem:${key}`;
  }
}
