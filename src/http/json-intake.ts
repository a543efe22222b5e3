import type { IncomingMessage } from 'node:http';
import type { RequestHandler } from 'express';
import { PushcastError } from '../errors.js';

/** 415 unless the request says its body is UTF-8 JSON (every route that reads a JSON body). */
export const requireJson: RequestHandler = (req, _res, next) => {
  checkJson(req);
  next();
};

/** 400 for no body at all (no Content-Length or 0, not chunked): that is not JSON. */
export const requireBody: RequestHandler = (req, _res, next) => {
  checkBody(req);
  next();
};

/** Throws what {@link requireJson} answers. */
export function checkJson(req: IncomingMessage): void {
  // The header itself: `req.is()` answers null for a request without a body.
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/json\s*(;|$)/i.test(type))
    throw new PushcastError(
      'unsupported_media_type',
      'Send the body as application/json (Content-Type header).',
    );
  // JSON is UTF-8 (RFC 8259 section 8.1); a charset that says otherwise cannot be read as sent.
  const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(type)?.[1];
  if (charset !== undefined && !/^utf-?8$/i.test(charset))
    throw new PushcastError('unsupported_media_type', 'Send the body as UTF-8 application/json.');
}

/** Throws what {@link requireBody} answers. */
export function checkBody(req: IncomingMessage): void {
  if (
    req.headers['transfer-encoding'] === undefined &&
    Number(req.headers['content-length'] ?? 0) === 0
  )
    throw new PushcastError('invalid_json', 'The request body is empty; send a JSON object.');
}
