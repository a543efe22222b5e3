/**
 * Every error the server answers with, in one catalogue: the contract's codes (CONTRACT.md) with
 * their HTTP status and a sentence for a human. Thrown where the problem is found; turned into a
 * response in one place (http/error-handler.ts) or an ack (realtime/acks.ts).
 */
export const errorCatalogue = {
  invalid_json: { status: 400, message: 'The request body is not valid JSON.' },
  unauthorized: {
    status: 401,
    message: 'A valid API key is required (Authorization: Bearer <key>).',
  },
  forbidden: { status: 403, message: 'This API key may not push to that channel.' },
  not_found: { status: 404, message: 'No such route.' },
  payload_too_large: { status: 413, message: 'The request is over the size limit.' },
  unsupported_media_type: { status: 415, message: 'Send the body as application/json.' },
  invalid_push: { status: 422, message: 'The push is not valid.' },
  invalid_request: { status: 422, message: 'The request is not valid.' },
  idempotency_mismatch: {
    status: 422,
    message:
      'This Idempotency-Key was already used with a different request (body or route); use a new key.',
  },
  rate_limited: { status: 429, message: 'Too many requests for this API key; retry later.' },
  internal: { status: 500, message: 'Internal server error.' },
  unavailable: {
    status: 503,
    message: 'The server cannot take pushes right now; nothing was pushed. Retry later.',
  },
} as const satisfies Record<string, { status: number; message: string }>;

/** A contract error code. */
export type ErrorCode = keyof typeof errorCatalogue;

/** The one error type: carries the contract's status and code, and optional details. */
export class PushcastError extends Error {
  readonly status: number;
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;
  /** Seconds for a `Retry-After` header (429, 503). */
  readonly retryAfterS: number | undefined;

  constructor(
    code: ErrorCode,
    message?: string,
    options: { details?: Record<string, unknown>; retryAfterS?: number; cause?: unknown } = {},
  ) {
    super(message ?? errorCatalogue[code].message, { cause: options.cause });
    this.name = 'PushcastError';
    this.code = code;
    this.status = errorCatalogue[code].status;
    this.details = options.details;
    this.retryAfterS = options.retryAfterS;
  }

  /** The JSON body the contract specifies: `{ error, code, details? }`. */
  toJSON(): { error: string; code: ErrorCode; details?: Record<string, unknown> } {
    return this.details === undefined
      ? { error: this.message, code: this.code }
      : { error: this.message, code: this.code, details: this.details };
  }
}

/** Why a node answers 503: one sentence each, used wherever the condition is found. */
const UNAVAILABLE = {
  draining: 'The server is shutting down; nothing was pushed. Retry on another node.',
  overloaded: 'The server is overloaded; nothing was pushed. Retry later.',
  bus: 'The cluster bus (Redis) is unreachable; nothing was pushed. Retry later.',
  cluster: 'The cluster bus (Redis) is unreachable, so other nodes cannot be asked; retry later.',
  idempotency: 'The idempotency store is unreachable; nothing was pushed. Retry later.',
  duplicate: 'A request with this Idempotency-Key is still running; retry later.',
  starting: 'The server is not started yet; retry later.',
} as const;

/** A 503 `unavailable` with `Retry-After: 1` for one of the known reasons. */
export function unavailable(
  reason: keyof typeof UNAVAILABLE,
  options: { details?: Record<string, unknown>; cause?: unknown } = {},
): PushcastError {
  return new PushcastError('unavailable', UNAVAILABLE[reason], { retryAfterS: 1, ...options });
}
