import express, { type RequestHandler, type Response } from 'express';
import { PushcastError } from '../errors.js';
import type { PushRequest } from '../delivery/pipeline.js';
import { requireChannels } from './api-auth.js';
import type { ApiRequest, HttpDeps } from './app.js';
import { sendError, toPushcastError } from './errors.js';
import { parsePush } from './push-input.js';
import type { RateLimiter } from './rate-limit.js';
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
    if (!req.is('application/json'))
      throw new PushcastError(
        'unsupported_media_type',
        'Send the body as application/json (Content-Type header).',
      );
    next();
  };

  const rateLimit =
    (cost: (req: ApiRequest) => number): RequestHandler =>
    (req: ApiRequest, _res, next) => {
      const wait = limiter.take(req.caller!.keyId, cost(req));
      if (wait > 0)
        throw new PushcastError(
          'rate_limited',
          `Rate limit for this API key exceeded; retry in ${wait} s.`,
          {
            retryAfterS: wait,
          },
        );
      next();
    };

  router.post(
    '/push',
    deps.authenticate('push'),
    rateLimit(() => 1),
    requireJson,
    json,
    async (req: ApiRequest, res) => {
      const push = parsePush(req.body, schemas, config.limits);
      requireChannels(req.caller!, push.channels);
      await idempotent(req, res, 'push', async () => {
        const result = await pipeline.push(push);
        return {
          status: 200,
          body: { id: result.id, channel: result.channel, event: result.event, data: result.data },
        };
      });
    },
  );

  router.post(
    '/push/batch',
    deps.authenticate('push'),
    rateLimit(() => 1),
    requireJson,
    json,
    async (req: ApiRequest, res) => {
      const parsed = schemas.batch.safeParse(req.body);
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        throw new PushcastError('invalid_push', `pushes: ${issue.message}`, {
          details: { field: 'pushes', issues: parsed.error.issues.map((i) => i.message) },
        });
      }
      // Charge the batch's remaining pushes to the key's rate limit (one was charged above).
      const extra = parsed.data.pushes.length - 1;
      if (extra > 0) {
        const wait = limiter.take(req.caller!.keyId, extra);
        if (wait > 0)
          throw new PushcastError(
            'rate_limited',
            `Rate limit for this API key exceeded; retry in ${wait} s.`,
            {
              retryAfterS: wait,
            },
          );
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
    },
  );

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
    const key = `${req.caller!.keyId}:${route}:${header}`;
    const deadline = Date.now() + 5000;
    for (;;) {
      const found = await deps.idempotency.begin(key).catch((err: unknown) => {
        throw new PushcastError(
          'unavailable',
          'The idempotency store is unreachable; nothing was pushed.',
          {
            retryAfterS: 1,
            cause: err,
          },
        );
      });
      if (found.state === 'done') {
        res.setHeader('Idempotent-Replayed', 'true');
        res.status(found.response.status).json(found.response.body);
        return;
      }
      if (found.state === 'new') break;
      // Another request with this key is running: wait for its answer.
      if (Date.now() > deadline)
        throw new PushcastError(
          'unavailable',
          'A request with this Idempotency-Key is still running; retry later.',
          {
            retryAfterS: 1,
          },
        );
      await new Promise((r) => setTimeout(r, 25));
    }
    try {
      const r = await work();
      await deps.idempotency
        .complete(key, r)
        .catch((err: unknown) => deps.log.warn({ err }, 'idempotency store failed'));
      res.status(r.status).json(r.body);
    } catch (err) {
      await deps.idempotency.abort(key).catch(() => {});
      if (err instanceof PushcastError) {
        sendError(res, err);
        return;
      }
      throw err;
    }
  }

  return router;
}
