import { createHash } from 'node:crypto';
import express, { type RequestHandler, type Response } from 'express';
import { PushcastError, unavailable } from '../errors.js';
import type { PushRequest } from '../delivery/pipeline.js';
import { requireChannels } from './api-auth.js';
import type { ApiRequest, HttpDeps } from './app.js';
import { toPushcastError } from './errors.js';
import { parsePush } from './push-input.js';
import type { RateLimiter } from '../auth/rate-limiter.js';
import type { ApiSchemas } from './schemas.js';

interface PushRouteDeps extends HttpDeps {
  limiter: RateLimiter;
  schemas: ApiSchemas;
  authenticate: (scope: string) => RequestHandler;
}

// RFC 9110 token-ish: 1-255 visible ASCII characters.
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

/** `POST /push` and `POST /push/batch` (CONTRACT section 1). */
export function pushRoutes(deps: PushRouteDeps): express.Router {
  const router = express.Router();
  const { config, pipeline, schemas, limiter } = deps;
  const json = express.json({ limit: config.limits.maxBodyBytes, strict: false, type: () => true });

  const requireJson: RequestHandler = (req, _res, next) => {
    // The header itself: `req.is()` answers null for a request without a body.
    if (!/^application\/json\s*(;|$)/i.test(req.headers['content-type'] ?? ''))
      throw new PushcastError(
        'unsupported_media_type',
        'Send the body as application/json (Content-Type header).',
      );
    next();
  };

  // No body at all (no Content-Length or 0, not chunked) is not JSON.
  const requireBody: RequestHandler = (req, _res, next) => {
    if (
      req.headers['transfer-encoding'] === undefined &&
      Number(req.headers['content-length'] ?? 0) === 0
    )
      throw new PushcastError('invalid_json', 'The request body is empty; send a JSON object.');
    next();
  };

  /** Charges `cost` pushes to the caller's key; 429 with the wait when they do not fit. */
  const charge = (keyId: string, cost: number): void => {
    const wait = limiter.take(keyId, cost);
    if (wait > 0)
      throw new PushcastError(
        'rate_limited',
        `Rate limit for this API key exceeded; retry in ${wait} s.`,
        { retryAfterS: wait },
      );
  };
  // One push charged before the body is read; a batch is charged whole once it is parsed.
  const rateLimit: RequestHandler = (req: ApiRequest, _res, next) => {
    charge(req.caller!.keyId, 1);
    next();
  };

  // Check order (README "Contract details"): 401/403 scope, 429, 415, 400/413, then the route.
  const intake = [deps.authenticate('push'), rateLimit, requireJson, requireBody, json];

  router.post('/push', ...intake, async (req: ApiRequest, res) => {
    const push = parsePush(req.body, schemas, config.limits);
    requireChannels(req.caller!, push.channels);
    await idempotent(req, res, 'push', async () => {
      const result = await pipeline.push(push);
      return {
        status: 200,
        body: { id: result.id, channel: result.channel, event: result.event, data: result.data },
      };
    });
  });

  router.post('/push/batch', ...intake, async (req: ApiRequest, res) => {
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
      limiter.refund(req.caller!.keyId, 1);
      charge(req.caller!.keyId, count);
    }
    pipeline.admit();
    await idempotent(req, res, 'batch', async () => {
      const results = await Promise.all(
        parsed.data.pushes.map(async (body) => {
          try {
            const push: PushRequest = parsePush(body, schemas, config.limits);
            requireChannels(req.caller!, push.channels);
            const r = await pipeline.push(push);
            return { id: r.id, channel: r.channel, event: r.event };
          } catch (err) {
            const e = toPushcastError(err);
            return { error: e.message, code: e.code };
          }
        }),
      );
      return { status: 200, body: { results } };
    });
  });

  /** Runs `work` once per Idempotency-Key (per API key and route); repeats get the first answer. */
  async function idempotent(
    req: ApiRequest,
    res: Response,
    route: string,
    work: () => Promise<{ status: number; body: unknown }>,
  ): Promise<void> {
    const header = req.headers['idempotency-key'];
    if (header === undefined) {
      const r = await work();
      res.status(r.status).json(r.body);
      return;
    }
    if (typeof header !== 'string' || !IDEMPOTENCY_KEY.test(header))
      throw new PushcastError(
        'invalid_push',
        'Idempotency-Key must be 1-255 visible ASCII characters.',
        {
          details: { field: 'Idempotency-Key' },
        },
      );
    // The key id comes from a hook and may hold ":"; escaped, no two (API key, header) meet. The
    // route is part of the fingerprint, not the key: the same header on another route is a reuse.
    const key = `${encodeURIComponent(req.caller!.keyId)}:${header}`;
    const fingerprint = requestFingerprint(route, req.body);
    const deadline = Date.now() + 5000;
    for (;;) {
      const found = await deps.idempotency.begin(key, fingerprint).catch((err: unknown) => {
        throw unavailable('idempotency', { cause: err });
      });
      if (found.state === 'mismatch')
        throw new PushcastError('idempotency_mismatch', undefined, {
          details: { field: 'Idempotency-Key' },
        });
      if (found.state === 'done') {
        res.setHeader('Idempotent-Replayed', 'true');
        res.status(found.response.status).json(found.response.body);
        return;
      }
      if (found.state === 'new') break;
      // Another request with this key is running: wait for its answer.
      if (Date.now() > deadline) throw unavailable('duplicate');
      await new Promise((r) => setTimeout(r, 25));
    }
    try {
      const r = await work();
      await deps.idempotency
        .complete(key, fingerprint, r)
        .catch((err: unknown) => deps.log.warn({ err }, 'idempotency store failed'));
      res.status(r.status).json(r.body);
    } catch (err) {
      // Only answers that succeeded are kept: the request may be retried with the same key.
      await deps.idempotency.abort(key).catch(() => {});
      throw err;
    }
  }

  return router;
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
