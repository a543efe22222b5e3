import { createHash } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { IdempotencyStore } from '../delivery/idempotency.js';
import { PushcastError, unavailable } from '../errors.js';
import type { ApiMessage } from './request-context.js';

// RFC 9110 token-ish: 1-255 visible ASCII characters.
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

/**
 * What a request's work leaves: the record to keep (and answer), whether it is final, and, for a
 * retryable failure, the error to answer once the record is kept for the retry.
 */
export interface WorkOutcome<R> {
  record: R;
  final: boolean;
  failure?: Error;
}

/** Runs a request's work at most once per Idempotency-Key (docs/protocol.md, "Idempotency-Key"). */
export type IdempotentRunner = <R>(
  req: ApiMessage,
  res: ServerResponse,
  route: string,
  work: (previous: R | undefined) => Promise<WorkOutcome<R>>,
) => Promise<R>;

/** The Idempotency-Key protocol of the push routes, over an {@link IdempotencyStore}. */
export function idempotentRunner(store: IdempotencyStore, log: Logger): IdempotentRunner {
  /**
   * Runs `work` once per Idempotency-Key (per API key): a repeat of the same request gets the
   * stored record (with `Idempotent-Replayed: true`), another request with the key is refused.
   * A record that is not final is kept for a retry, which resumes from it; an outcome with a
   * `failure` is answered with it once its record is kept.
   */
  return async function idempotent<R>(
    req: ApiMessage,
    res: ServerResponse,
    route: string,
    work: (previous: R | undefined) => Promise<WorkOutcome<R>>,
  ): Promise<R> {
    const header = req.headers['idempotency-key'];
    if (header === undefined) return answer(await work(undefined));
    if (typeof header !== 'string' || !IDEMPOTENCY_KEY.test(header))
      throw new PushcastError(
        'invalid_push',
        'Idempotency-Key must be 1-255 visible ASCII characters.',
        { details: { field: 'Idempotency-Key' } },
      );
    // The route is part of the fingerprint, not the key: the same header on another route is a
    // reuse of the key for another request.
    const key = { owner: req.caller!.keyId, key: header };
    const fingerprint = requestFingerprint(route, req.body);
    const deadline = Date.now() + 5000;
    let previous: R | undefined;
    for (;;) {
      const found = await store.begin(key, fingerprint).catch((err: unknown) => {
        throw unavailable('idempotency', { cause: err });
      });
      if (found.state === 'mismatch')
        throw new PushcastError('idempotency_mismatch', undefined, {
          details: { field: 'Idempotency-Key' },
        });
      if (found.state === 'full')
        throw new PushcastError(
          'rate_limited',
          'This API key holds as many Idempotency-Keys as it may; retry later or without one.',
          { retryAfterS: 60, details: { field: 'Idempotency-Key' } },
        );
      if (found.state === 'done') {
        res.setHeader('Idempotent-Replayed', 'true');
        return found.response.body as R;
      }
      if (found.state === 'resume') previous = found.response.body as R;
      if (found.state === 'new' || found.state === 'resume') break;
      // Another request with this key is running: wait for its answer.
      if (Date.now() > deadline) throw unavailable('duplicate');
      await new Promise((r) => setTimeout(r, 25));
    }
    let outcome: WorkOutcome<R>;
    try {
      outcome = await work(previous);
      await store
        .complete(key, fingerprint, { status: 200, body: outcome.record }, outcome.final)
        .catch((err: unknown) => log.warn({ err }, 'idempotency store failed'));
    } catch (err) {
      // Nothing new to keep: the request may be retried with the same key.
      await store
        .abort(key)
        .catch((e: unknown) => log.warn({ err: e }, 'idempotency store failed'));
      throw err;
    }
    return answer(outcome);
  };
}

/** The record to answer, or the failure the work ended with (its record already kept). */
function answer<R>(outcome: WorkOutcome<R>): R {
  if (outcome.failure !== undefined) throw outcome.failure;
  return outcome.record;
}

/**
 * What binds an Idempotency-Key to its request: the route and the body as parsed (so the same
 * JSON resent byte for byte, or re-serialized with the same key order, matches).
 */
function requestFingerprint(route: string, body: unknown): string {
  return createHash('sha256')
    .update(route)
    .update('\n')
    .update(JSON.stringify(body))
    .digest('base64url');
}
