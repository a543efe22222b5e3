import express, { type RequestHandler, type Response } from 'express';
import { PushcastError } from '../errors.js';
import { idempotentRunner } from './idempotent.js';
import type { PushIdentity, PushRequest } from '../delivery/pipeline.js';
import { requireChannels } from './api-auth.js';
import type { ApiRequest, Authorize, HttpDeps } from './app.js';
import { toPushcastError } from './errors.js';
import { checkBody, checkJson } from './json-intake.js';
import { parsePush } from './push-input.js';
import { readPushBody, tooLarge, type OversizeSlots } from './push-body.js';
import type { PushLimiter } from '../limits/push-limiter.js';
import type { ApiSchemas } from './schemas.js';

interface PushRouteDeps extends HttpDeps {
  limiter: PushLimiter;
  schemas: ApiSchemas;
  authorize: Authorize;
}

/** `POST /push` and `POST /push/batch` (docs/protocol.md, "Push API"). */
export function pushRoutes(deps: PushRouteDeps): express.Router {
  const router = express.Router();
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
  // Check order (README "Contract details"): 401/403 scope, 429, 415, 400/413, then the route.
  // The four checks before the body in one middleware, and the body in one more: the server's
  // hottest routes pass through as few layers as they can.
  const intake: RequestHandler = async (req: ApiRequest, _res, next) => {
    const caller = await deps.authorize(req, 'push');
    req.caller = caller;
    // One push charged before the body is read; a batch is charged whole once it is parsed.
    await charge(caller.keyId, 1);
    checkJson(req);
    checkBody(req);
    next();
  };

  router.post(
    '/push',
    intake,
    readPushBody('push', config.limits),
    async (req: ApiRequest, res) => {
      const push = parsePush(req.body, schemas, config.limits, { parsed: true });
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
      answerJson(
        res,
        `{"id":${JSON.stringify(record)},"channel":${JSON.stringify(push.channels)},` +
          `"event":${JSON.stringify(push.event)},"data":${push.dataJson}}`,
      );
    },
  );

  router.post(
    '/push/batch',
    intake,
    readPushBody('batch', config.limits),
    async (req: ApiRequest, res) => {
      const oversize = res.locals.oversize as OversizeSlots;
      const parsed = schemas.batch.safeParse(req.body);
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
            if (cut) throw tooLarge(cut, 'batch');
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
      answerJson(
        res,
        JSON.stringify({
          results: results.map(({ pending: _pending, ...answer }: BatchSlot) => answer),
        }),
      );
    },
  );

  return router;
}

/**
 * A 200 JSON answer, already serialized, written as `res.json` writes one to a POST (status,
 * `Content-Type` with its charset, the body, its length) without parsing and re-formatting its
 * own content type and reading app settings on every answer.
 */
function answerJson(res: Response, json: string): void {
  res.statusCode = 200;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.end(json);
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
