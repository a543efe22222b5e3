import type { IncomingMessage, ServerResponse } from 'node:http';
import express from 'express';
import type { Config } from '../config/schema.js';
import { PushcastError } from '../errors.js';
import { bodyCutShort, bodyTooLarge, toPushcastError } from './errors.js';
import { scanJson, withoutOversize, type OversizeField, type ScanShape } from './json-scan.js';

/** Nesting of a push body around its `data`: the push object, or batch object, array and push. */
const WRAPPING: Record<ScanShape, number> = { push: 1, batch: 3 };
/** Largest value of a push field other than `data` (100 channel names fit in a quarter of it). */
const MAX_FIELD_BYTES = 64 * 1024;

/** Batch slots whose field was over its limit, cut out before the parse (answered 413). */
export type OversizeSlots = ReadonlyMap<number, OversizeField>;

/** A push body as read: the parsed JSON, and for a batch the slots refused by size. */
export interface PushBody {
  body: unknown;
  oversize: OversizeSlots;
}

/**
 * Reads a push body: the raw bytes (up to `maxBodyBytes`, inflated if compressed), a bounded
 * scan (see json-scan.ts), then `JSON.parse`. Throws the contract's 400/413/415.
 */
export function pushBodyReader(
  shape: ScanShape,
  limits: Config['limits'],
): (req: IncomingMessage, res: ServerResponse) => Promise<PushBody> {
  const limit = limits.maxBodyBytes;
  // body-parser for what needs more than a plain read: a compressed or chunked body.
  const raw = express.raw({ limit, type: () => true });
  const readEncoded = (req: IncomingMessage, res: ServerResponse): Promise<Buffer> =>
    new Promise((resolve, reject) => {
      void raw(req, res, (err?: unknown) => {
        if (err !== undefined) reject(toPushcastError(err));
        else {
          const body = (req as { body?: unknown }).body;
          resolve(Buffer.isBuffer(body) ? body : Buffer.alloc(0));
        }
      });
    });
  const parse = (body: Buffer): PushBody => {
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
    if (!scan.ok) throw tooLarge(scan.field);
    const text = withoutOversize(body, scan.oversize).toString('utf8');
    let parsed: unknown;
    try {
      parsed = JSON.parse(text) as unknown;
    } catch {
      throw new PushcastError('invalid_json', 'The request body is not valid JSON.');
    }
    return { body: parsed, oversize: new Map(scan.oversize.map((f) => [f.slot, f])) };
  };
  return async (req, res) => {
    const encoding = req.headers['content-encoding'];
    const plain =
      req.headers['transfer-encoding'] === undefined &&
      (encoding === undefined || encoding.toLowerCase() === 'identity');
    // Node's parser has already checked Content-Length (digits only, no second value).
    const body = plain
      ? await readPlain(req, Number(req.headers['content-length'] ?? 0), limit)
      : await readEncoded(req, res);
    return parse(body);
  };
}

/** For the 'error' a reset request emits: its 'close' settles the read. */
function ignore(): void {}

/**
 * Reads a body sent as is with its length announced. Over the limit, the body is read off and
 * dropped before the 413 (as body-parser does), so the client is answered, not cut off mid-send.
 */
function readPlain(req: IncomingMessage, length: number, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // A reset mid-body ends in 'close' (settled below); an 'error' Node emits for it goes nowhere.
    req.on('error', ignore);
    // Gone while the checks before the body waited (a hook, Redis): no 'close' is coming again.
    if (req.destroyed) {
      reject(bodyCutShort());
      return;
    }
    if (length > limit) {
      req.once('end', () => reject(bodyTooLarge(limit)));
      req.once('close', () => reject(bodyTooLarge(limit)));
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      size += chunk.length;
    };
    const settle = (): void => {
      req.off('data', onData);
      req.off('end', settle);
      req.off('close', settle);
      // 'close' before 'end': the client went away mid-body.
      if (size !== length || !req.complete) reject(bodyCutShort());
      else resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    req.on('data', onData);
    req.once('end', settle);
    req.once('close', settle);
  });
}

/** The 413 for a field over its limit (`size` is a lower bound when the scan stopped early). */
export function tooLarge(field: OversizeField): PushcastError {
  const name = field.slot >= 0 ? `pushes.${field.slot}.${field.key}` : field.key;
  const what = field.key === 'data' ? 'data' : `field "${field.key}"`;
  return new PushcastError(
    'payload_too_large',
    `${what} is over the limit of ${field.limit} bytes.`,
    { details: { field: name, limit: field.limit, size: field.size } },
  );
}
