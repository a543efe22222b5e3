import express, { type Request, type RequestHandler, type Response } from 'express';
import type { Config } from '../config/schema.js';
import { PushcastError } from '../errors.js';
import { scanJson, withoutOversize, type OversizeField, type ScanShape } from './json-scan.js';

/** Nesting of a push body around its `data`: the push object, or batch object, array and push. */
const WRAPPING: Record<ScanShape, number> = { push: 1, batch: 3 };
/** Largest value of a push field other than `data` (100 channel names fit in a quarter of it). */
const MAX_FIELD_BYTES = 64 * 1024;

/** Batch slots whose field was over its limit, cut out before the parse (answered 413). */
export type OversizeSlots = ReadonlyMap<number, OversizeField>;

/**
 * Reads a push body: the raw bytes (up to `maxBodyBytes`, inflated if compressed), a bounded
 * scan (see json-scan.ts), then `JSON.parse`. Leaves the parsed value in `req.body` and, for a
 * batch, the slots refused by size in `res.locals.oversize`.
 */
export function readPushBody(shape: ScanShape, limits: Config['limits']): RequestHandler {
  const raw = express.raw({ limit: limits.maxBodyBytes, type: () => true });
  const parse = (req: Request, res: Response): void => {
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const scan = scanJson(body, shape, {
      maxDepth: limits.maxDataDepth + WRAPPING[shape],
      maxDataBytes: limits.maxDataBytes,
      maxFieldBytes: MAX_FIELD_BYTES,
    });
    if (!scan.ok && scan.reason === 'too_deep')
      throw new PushcastError(
        'invalid_push',
        `data: nests deeper than ${limits.maxDataDepth} levels.`,
        { details: { field: 'data', limit: limits.maxDataDepth } },
      );
    if (!scan.ok) throw tooLarge(scan.field, shape);
    const text = withoutOversize(body, scan.oversize).toString('utf8');
    try {
      req.body = JSON.parse(text) as unknown;
    } catch {
      throw new PushcastError('invalid_json', 'The request body is not valid JSON.');
    }
    res.locals.oversize = new Map(scan.oversize.map((f) => [f.slot, f])) satisfies OversizeSlots;
  };
  // One middleware (the raw read, then the parse) rather than two layers of the router.
  return (req, res, next) => {
    void raw(req, res, (err?: unknown) => {
      if (err !== undefined) return next(err);
      try {
        parse(req, res);
      } catch (e) {
        return next(e);
      }
      next();
    });
  };
}

/** The 413 for a field over its limit (`size` is a lower bound when the scan stopped early). */
export function tooLarge(field: OversizeField, shape: ScanShape): PushcastError {
  const name =
    field.slot >= 0
      ? `pushes.${field.slot}.${field.key}`
      : shape === 'batch'
        ? field.key
        : field.key;
  const what = field.key === 'data' ? 'data' : `field "${field.key}"`;
  return new PushcastError(
    'payload_too_large',
    `${what} is over the limit of ${field.limit} bytes.`,
    { details: { field: name, limit: field.limit, size: field.size } },
  );
}
