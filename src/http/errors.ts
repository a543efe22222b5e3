import type { ServerResponse } from 'node:http';
import type { ErrorRequestHandler } from 'express';
import type { Logger } from 'pino';
import { errorCatalogue, PushcastError, type HttpErrorCode } from '../errors.js';

/** The HTTP status of an API error code. */
export function httpStatus(code: HttpErrorCode): number {
  return errorCatalogue[code].status;
}

/** Sends a {@link PushcastError} as the contract's JSON error. */
export function sendError(res: ServerResponse, err: PushcastError): void {
  if (err.retryAfterS !== undefined) res.setHeader('Retry-After', String(err.retryAfterS));
  // RFC 6750: a 401 names the scheme it wants.
  if (err.code === 'unauthorized') res.setHeader('WWW-Authenticate', 'Bearer realm="pushcast"');
  writeJson(res, httpStatus(err.code), JSON.stringify(err.toJSON()));
}

/**
 * A JSON answer already serialized, written as Express's `res.json` writes one (status,
 * `Content-Type` with its charset, the length, the body) without parsing and re-formatting its own
 * content type and reading app settings on every answer. The length also answers a HEAD (Node
 * sends no body).
 */
export function writeJson(res: ServerResponse, status: number, json: string): void {
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(json));
  res.end(json);
}

/** Answers any error of a request as a contract error; the unexpected (500) is logged. */
export function answerFailure(log: Logger, path: string, res: ServerResponse, err: unknown): void {
  const mapped = toPushcastError(err);
  if (httpStatus(mapped.code) >= 500 && mapped.code !== 'unavailable')
    log.error({ err, path }, 'request failed');
  if (res.headersSent) return;
  sendError(res, mapped);
}

/** {@link answerFailure} as Express's error handler: body-parser's errors, ours, the unexpected. */
export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => answerFailure(log, req.path, res, err);
}

/** The 413 for a request body over `limit` bytes. */
export function bodyTooLarge(limit: number | undefined): PushcastError {
  return new PushcastError(
    'payload_too_large',
    `The request body is over the limit of ${limit} bytes.`,
    { details: { field: 'body', limit } },
  );
}

/** The 400 for a request body that ended before its announced length. */
export function bodyCutShort(): PushcastError {
  return new PushcastError('invalid_json', 'The request body was cut short.');
}

/** The contract error for anything thrown while handling a request. */
export function toPushcastError(err: unknown): PushcastError {
  if (err instanceof PushcastError) return err;
  const type = (err as { type?: unknown } | undefined)?.type;
  if (type === 'entity.parse.failed')
    return new PushcastError('invalid_json', 'The request body is not valid JSON.');
  if (type === 'entity.too.large') return bodyTooLarge((err as { limit?: number }).limit);
  if (type === 'encoding.unsupported' || type === 'charset.unsupported')
    return new PushcastError('unsupported_media_type', 'Send the body as UTF-8 application/json.');
  if (type === 'request.aborted') return bodyCutShort();
  // A route parameter with a broken %-escape (the router could not decode it).
  if (err instanceof URIError)
    return new PushcastError('invalid_request', 'The URL holds a malformed %-escape.', {
      details: { field: 'path' },
    });
  // Any other body-reading error (a corrupt gzip or deflate stream, a bad length) is the
  // client's: body-parser marks those with a 4xx status.
  const status = (err as { status?: unknown } | undefined)?.status;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    if (status === 413) return new PushcastError('payload_too_large');
    if (status === 415) return new PushcastError('unsupported_media_type');
    return new PushcastError('invalid_json', 'The request body could not be read (bad encoding?).');
  }
  return new PushcastError('internal', undefined, { cause: err });
}
