import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { IdempotencyStore } from '../delivery/idempotency.js';
import { PushcastError } from '../errors.js';
import { idempotentRunner } from './idempotent.js';
import type { PushIdentity, PushPipeline, PushRequest } from '../delivery/pipeline.js';
import { requireChannels, type Authorize } from './api-auth.js';
import { answerFailure, toPushcastError, writeJson } from './errors.js';
import { checkBody, checkJson } from './json-intake.js';
import type { ScanShape } from './json-scan.js';
import { parsePush } from './push-input.js';
import { pushBodyReader, tooLarge, type PushBody } from './push-body.js';
import { pathOf, type ApiMessage } from './request-context.js';
import type { PushLimiter } from '../limits/push-limiter.js';
import type { ApiSchemas } from './schemas.js';

interface PushRouteDeps {
  config: Config;
  log: Logger;
  pipeline: PushPipeline;
  idempotency: IdempotencyStore;
  limiter: PushLimiter;
  schemas: ApiSchemas;
  authorize: Authorize;
  /** Starts the request: its id, access log, metric and hooks; throws 503 while draining. */
  begin: (req: ApiMessage, res: ServerResponse) => void;
}

/** A push route's work once the body is read: answers 200 or throws the contract's error. */
type PushWork = (req: ApiMessage, res: ServerResponse, read: PushBody) => Promise<void>;

/**
 * `POST /api/push` and `POST /api/push/batch` (docs/protocol.md, "Push API"), by path, as handlers
 * of Node's own request and response: every step an Express route would take (request context,
 * the checks, the body, the error answer) in one function, without the router. The security
 * headers are set by whoever routed the request (app.ts).
 */
export function pushRoutes(
  deps: PushRouteDeps,
): Map<string, (req: ApiMessage, res: ServerResponse) => void> {
  const { config, pipeline, schemas, limiter } = deps;
  const idempotent = idempotentRunner(deps.idempotency, deps.log);

  /** Charges `cost` pushes to the caller's key; 429 with the wait when they do not fit. */
  const charge = async (keyId: string, cost: number): Promise<void> => {
    const wait = await limiter.charge(keyId, cost);
    if (wait > 0)
      throw new PushcastError(
        'rate_limited',
        `Rate limit for this API key exceeded; retry in ${wait} s.`,
        { retryAfterS: wait },
      );
  };

  /** A route: the path its API key hooks see (under /api), the body's shape, its own work. */
  const route = (path: '/push' | '/push/batch', shape: ScanShape, work: PushWork) => {
    const readBody = pushBodyReader(shape, config.limits);
    const routePattern = `/api${path}`;
    // Check order (README "Contract details"): 401/403 scope, 429, 415, 400/413, then the route.
    const serve = async (req: ApiMessage, res: ServerResponse): Promise<void> => {
      deps.begin(req, res);
      // After the draining check: a 503 refused before routing is counted as unmatched.
      req.routePattern = routePattern;
      const caller = await deps.authorize({ method: 'POST', path, headers: req.headers }, 'push');
      req.caller = caller;
      // One push charged before the body is read; a batch is charged whole once it is parsed.
      await charge(caller.keyId, 1);
      checkJson(req);
      checkBody(req);
      const read = await readBody(req, res);
      req.body = read.body;
      await work(req, res, read);
    };
    return (req: ApiMessage, res: ServerResponse): void => {
      serve(req, res).catch((err: unknown) => {
        try {
          answerFailure(deps.log, pathOf(req), res, err);
        } catch {
          // Not even the error could be answered (a failing logger): drop the connection.
          res.destroy();
        }
      });
    };
  };

  const push: PushWork = async (req, res, { body }) => {
    const push = parsePush(body, schemas, config.limits, { parsed: true });
    requireChannels(req.caller!, push.channels);
    // Only the id is kept for a replay: the rest of the answer is the request itself, which the
    // fingerprint guarantees is the same. A 503 keeps the push's identity as a partial answer,
    // so a retry with the key publishes the same push id (and, on a Redis Cluster, completes
    // it only on the channels that missed it).
    const record = await idempotent<PushRecord>(req, res, 'push', async (previous) => {
      const identity = pendingOf(previous) ?? pipeline.identity();
      try {
        return { record: (await pipeline.push(push, identity)).id, final: true };
      } catch (err) {
        const e = toPushcastError(err);
        if (e.code !== 'unavailable') throw err;
        return { record: { pending: identity }, final: false, failure: e };
      }
    });
    // Only a published push is answered (a pending record comes back with its failure thrown).
    // `{ id, channel, event, data }`, with the data as already serialized once (push-input.ts).
    writeJson(
      res,
      200,
      `{"id":${JSON.stringify(record)},"channel":${JSON.stringify(push.channels)},` +
        `"event":${JSON.stringify(push.event)},"data":${push.dataJson}}`,
    );
  };

  const batch: PushWork = async (req, res, { body, oversize }) => {
    const parsed = schemas.batch.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new PushcastError('invalid_push', `pushes: ${issue.message}`, {
        details: { field: 'pushes', issues: parsed.error.issues.map((i) => i.message) },
      });
    }
    // Charge the whole batch at once, one token per push: the token taken up front (before the
    // body was read) is given back first, so a batch over the burst is not refused for ever.
    const count = parsed.data.pushes.length;
    if (count > 1) {
      await limiter.refund(req.caller!.keyId, 1);
      await charge(req.caller!.keyId, count);
    }
    pipeline.admit();
    /** A slot's failure; a retryable one keeps its identity, so a retry publishes the same id. */
    const failed = (err: unknown, identity: PushIdentity): BatchSlot => {
      const e = toPushcastError(err);
      return e.code === 'unavailable'
        ? { error: e.message, code: e.code, pending: identity }
        : { error: e.message, code: e.code };
    };
    // A slot that failed with a retryable error (503) is run again by a retry with the same
    // Idempotency-Key; the slots that were published are not, so each push happens once. The
    // slots that pass their checks are published together, in order (pipeline.pushMany).
    const results = await idempotent<BatchSlot[]>(req, res, 'batch', async (previous) => {
      const record = new Array<BatchSlot>(count);
      const publish: Array<{ slot: number; request: PushRequest; identity: PushIdentity }> = [];
      parsed.data.pushes.forEach((body, slot) => {
        const before = previous?.[slot];
        if (before && !retryable(before)) {
          record[slot] = before;
          return;
        }
        const identity =
          (before && 'pending' in before ? before.pending : undefined) ?? pipeline.identity();
        try {
          const cut = oversize.get(slot);
          if (cut) throw tooLarge(cut);
          const request = parsePush(body, schemas, config.limits, { parsed: true });
          requireChannels(req.caller!, request.channels);
          publish.push({ slot, request, identity });
        } catch (err) {
          record[slot] = failed(err, identity);
        }
      });
      const outcomes = await pipeline.pushMany(publish);
      publish.forEach(({ slot, identity }, k) => {
        const { result, error } = outcomes[k]!;
        record[slot] = result
          ? { id: result.id, channel: result.channel, event: result.event }
          : failed(error, identity);
      });
      return { record, final: !record.some(retryable) };
    });
    // The identities kept for a retry are the server's own: not part of the answer.
    writeJson(
      res,
      200,
      JSON.stringify({
        results: results.map(({ pending: _pending, ...answer }: BatchSlot) => answer),
      }),
    );
  };

  return new Map([
    ['/push', route('/push', 'push', push)],
    ['/push/batch', route('/push/batch', 'batch', batch)],
  ]);
}

/** One slot of a batch answer, as stored (a retryable failure keeps the push's identity). */
type BatchSlot =
  | { id: string; channel: string[]; event: string; pending?: undefined }
  | { error: string; code: string; pending?: PushIdentity };

/** What a single push stores: its id once published, or the identity a retry must reuse. */
type PushRecord = string | { pending: PushIdentity };

/** The identity a retry reuses, when its first attempt failed retryably. */
function pendingOf(previous: PushRecord | undefined): PushIdentity | undefined {
  return typeof previous === 'object' ? previous.pending : undefined;
}

/** Whether a batch slot failed in a way a retry can fix (503: overloaded, Redis away). */
function retryable(slot: BatchSlot): boolean {
  return 'code' in slot && slot.code === 'unavailable';
}
