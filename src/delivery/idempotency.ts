import type { Redis } from 'ioredis';

/** A stored API answer, replayed for a repeated Idempotency-Key (only what the replay needs). */
export interface StoredResponse {
  status: number;
  body: unknown;
}

/** What `begin` found for a key. */
export type IdempotencyState =
  | { state: 'new' }
  | { state: 'done'; response: StoredResponse }
  /**
   * A partial answer was stored (a batch whose slots failed with a retryable error): the caller
   * now holds the key and re-runs only what failed, then completes or aborts.
   */
  | { state: 'resume'; response: StoredResponse }
  | { state: 'busy' }
  /** The key is held by a request with another fingerprint (another body or route). */
  | { state: 'mismatch' }
  /** The API key already holds as many keys as it may (Redis mode). */
  | { state: 'full' };

/**
 * Idempotency keys (per API key): the first request with a key runs; later ones get its answer.
 * Only answers without a retryable failure are final, so a request that failed can be retried
 * with the same key. A key is bound to its request's fingerprint: reused for another request, it
 * is refused rather than answered with the first request's result.
 */
export interface IdempotencyStore {
  begin(key: IdempotencyKey, fingerprint: string): Promise<IdempotencyState>;
  /** Stores the answer: `final` false keeps it as a partial answer a retry resumes. */
  complete(
    key: IdempotencyKey,
    fingerprint: string,
    response: StoredResponse,
    final: boolean,
  ): Promise<void>;
  /** Gives the key up after a failure: forgotten, or back to its partial answer if it had one. */
  abort(key: IdempotencyKey): Promise<void>;
}

/** An Idempotency-Key as the store sees it: the API key that owns it and the header's value. */
export interface IdempotencyKey {
  owner: string;
  key: string;
}

// A claim expires on its own if its node dies mid-request.
const CLAIM_TTL_S = 60;

interface MemoryEntry {
  fingerprint: string;
  state: 'pending' | 'done' | 'partial';
  response: StoredResponse | undefined;
  bytes: number;
  expires: number;
}

/**
 * Idempotency in this process's memory (single node), bounded by `maxBytes`: past it the oldest
 * answers are forgotten first (a retry that late pushes again, as after the TTL).
 */
export class MemoryIdempotencyStore implements IdempotencyStore {
  /** In expiry order (entries only move forward in time): the sweep and eviction order. */
  private readonly entries = new Map<string, MemoryEntry>();
  private bytes = 0;

  constructor(
    private readonly ttlS: number,
    private readonly maxBytes: number = Number.POSITIVE_INFINITY,
    private readonly now: () => number = Date.now,
  ) {}

  /** Approximate bytes held (for tests and metrics). */
  get heldBytes(): number {
    return this.bytes;
  }

  begin(key: IdempotencyKey, fingerprint: string): Promise<IdempotencyState> {
    this.sweep();
    const id = memoryKey(key);
    const e = this.entries.get(id);
    if (!e || e.expires <= this.now()) {
      if (e) this.remove(id, e);
      this.put(id, { fingerprint, state: 'pending', response: undefined }, CLAIM_TTL_S);
      return Promise.resolve({ state: 'new' });
    }
    if (e.fingerprint !== fingerprint) return Promise.resolve({ state: 'mismatch' });
    if (e.state === 'pending' || !e.response) return Promise.resolve({ state: 'busy' });
    if (e.state === 'done') return Promise.resolve({ state: 'done', response: e.response });
    e.state = 'pending';
    return Promise.resolve({ state: 'resume', response: e.response });
  }

  complete(
    key: IdempotencyKey,
    fingerprint: string,
    response: StoredResponse,
    final: boolean,
  ): Promise<void> {
    this.put(
      memoryKey(key),
      { fingerprint, state: final ? 'done' : 'partial', response },
      this.ttlS,
    );
    return Promise.resolve();
  }

  abort(key: IdempotencyKey): Promise<void> {
    const id = memoryKey(key);
    const e = this.entries.get(id);
    if (e?.response) e.state = 'partial';
    else if (e) this.remove(id, e);
    return Promise.resolve();
  }

  private put(id: string, entry: Omit<MemoryEntry, 'bytes' | 'expires'>, ttlS: number): void {
    const old = this.entries.get(id);
    if (old) this.remove(id, old);
    const bytes = id.length + entry.fingerprint.length + sizeOf(entry.response) + 64;
    // Re-inserted so the map stays in expiry order.
    this.entries.set(id, { ...entry, bytes, expires: this.now() + ttlS * 1000 });
    this.bytes += bytes;
    for (const [k, e] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      if (k !== id) this.remove(k, e);
    }
  }

  private remove(id: string, e: MemoryEntry): void {
    this.entries.delete(id);
    this.bytes -= e.bytes;
  }

  private sweep(): void {
    const now = this.now();
    for (const [k, e] of this.entries) {
      // Claims (60 s) sit among answers (the TTL): stop at the first live answer.
      if (e.expires > now && e.state !== 'pending') break;
      if (e.expires <= now) this.remove(k, e);
    }
  }
}

function memoryKey(key: IdempotencyKey): string {
  // The owner comes from a hook and may hold ":"; escaped, no two (owner, key) pairs meet.
  return `${encodeURIComponent(key.owner)}:${key.key}`;
}

function sizeOf(response: StoredResponse | undefined): number {
  return response === undefined ? 0 : JSON.stringify(response.body).length + 16;
}

/**
 * One step in Redis per `begin`: claim a new key (counting it against its owner's cap), or read
 * the stored entry, and take over a partial answer. Entry format: `<state>|<fingerprint>|<json>`
 * with state `p` (claimed), `d` (done), `r` (partial, resumable). The key and the owner's index
 * share the owner's hash tag, so the script runs on one Redis Cluster slot.
 */
const BEGIN_SCRIPT = `
local v = redis.call('GET', KEYS[1])
if not v then
  local now = tonumber(ARGV[3])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return {'full'} end
  redis.call('SET', KEYS[1], 'p|' .. ARGV[1] .. '|', 'EX', ARGV[2])
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[5]) * 1000, KEYS[1])
  redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[5]) * 1000)
  return {'new'}
end
local state = string.sub(v, 1, 1)
local bar = string.find(v, '|', 3, true)
if string.sub(v, 3, bar - 1) ~= ARGV[1] then return {'mismatch'} end
local json = string.sub(v, bar + 1)
if state == 'p' then return {'busy'} end
if state == 'd' then return {'done', json} end
redis.call('SET', KEYS[1], 'p' .. string.sub(v, 2), 'EX', ARGV[2])
return {'resume', json}
`;

/** Gives a claim up: back to its partial answer if it holds one, else forgotten. */
const ABORT_SCRIPT = `
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local bar = string.find(v, '|', 3, true)
if string.sub(v, 1, 1) == 'p' and bar and bar < #v then
  redis.call('SET', KEYS[1], 'r' .. string.sub(v, 2), 'EX', ARGV[1])
  return 1
end
if string.sub(v, 1, 1) == 'p' then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], KEYS[1])
end
return 0
`;

/** Idempotency shared by the cluster, in Redis, with a cap on the keys one API key may hold. */
export class RedisIdempotencyStore implements IdempotencyStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly ttlS: number,
    /** Idempotency keys one API key may hold at once (within the TTL). */
    private readonly maxKeysPerOwner: number,
  ) {}

  async begin(key: IdempotencyKey, fingerprint: string): Promise<IdempotencyState> {
    const [k, index] = this.keys(key);
    const answer = (await this.redis.eval(
      BEGIN_SCRIPT,
      2,
      k,
      index,
      fingerprint,
      CLAIM_TTL_S,
      Date.now(),
      this.maxKeysPerOwner,
      this.ttlS,
    )) as [string, string?];
    const [state, json] = answer;
    if (state === 'done' || state === 'resume')
      return { state, response: JSON.parse(json!) as StoredResponse };
    return { state: state as 'new' | 'busy' | 'mismatch' | 'full' };
  }

  async complete(
    key: IdempotencyKey,
    fingerprint: string,
    response: StoredResponse,
    final: boolean,
  ): Promise<void> {
    const entry = `${final ? 'd' : 'r'}|${fingerprint}|${JSON.stringify(response)}`;
    await this.redis.set(this.keys(key)[0], entry, 'EX', this.ttlS);
  }

  async abort(key: IdempotencyKey): Promise<void> {
    const [k, index] = this.keys(key);
    await this.redis.eval(ABORT_SCRIPT, 2, k, index, this.ttlS);
  }

  private keys(key: IdempotencyKey): [string, string] {
    const tag = `{idem:${encodeURIComponent(key.owner)}}`;
    return [`${this.prefix}:${tag}:${key.key}`, `${this.prefix}:${tag}:index`];
  }
}
