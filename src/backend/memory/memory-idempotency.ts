import {
  CLAIM_TTL_S,
  type IdempotencyKey,
  type IdempotencyState,
  type IdempotencyStore,
  type StoredResponse,
} from '../../delivery/idempotency.js';

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
    // Only a claim is given up: a final answer stored meanwhile (by a request that outlived
    // another's claim) stays final.
    if (!e || e.state !== 'pending') return Promise.resolve();
    if (e.response) e.state = 'partial';
    else this.remove(id, e);
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
