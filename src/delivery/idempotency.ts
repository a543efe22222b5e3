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

/** A claim expires on its own if its node dies mid-request (seconds). */
export const CLAIM_TTL_S = 60;
