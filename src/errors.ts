/**
 * Every error word the server answers with, HTTP and sockets alike, in one catalogue: each code
 * with a sentence for a human, whether the same request may succeed later (`retry`), its HTTP
 * status where the HTTP API answers it, and where a socket sees it (`socket`: a join/leave/refresh
 * acknowledgement `{ ok: false, error }`, a `connect_error` `data.code`, or `close`: the `error`
 * event the server sends before it ends a session). Errors are thrown where the problem is found,
 * as {@link PushcastError} with a code; the edges map them: the HTTP error handler
 * (src/http/errors.ts) to a status and JSON body, the socket layer to an answer.
 * docs/protocol.md lists them all for clients.
 */
export const errorCatalogue = {
  invalid_json: { status: 400, retry: false, message: 'The request body is not valid JSON.' },
  unauthorized: {
    status: 401,
    retry: false,
    socket: 'connect',
    message: 'A valid API key is required (Authorization: Bearer <key>).',
  },
  forbidden: {
    status: 403,
    retry: false,
    socket: 'ack',
    message: 'This API key may not push to that channel.',
  },
  not_found: { status: 404, retry: false, message: 'No such route.' },
  payload_too_large: { status: 413, retry: false, message: 'The request is over the size limit.' },
  unsupported_media_type: {
    status: 415,
    retry: false,
    message: 'Send the body as application/json.',
  },
  invalid_push: { status: 422, retry: false, message: 'The push is not valid.' },
  invalid_request: {
    status: 422,
    retry: false,
    socket: 'ack',
    message: 'The request is not valid.',
  },
  idempotency_mismatch: {
    status: 422,
    retry: false,
    message:
      'This Idempotency-Key was already used with a different request (body or route); use a new key.',
  },
  rate_limited: {
    status: 429,
    retry: true,
    socket: 'ack',
    message: 'Too many requests for this API key; retry later.',
  },
  internal: { status: 500, retry: true, message: 'Internal server error.' },
  unavailable: {
    status: 503,
    retry: true,
    message: 'The server cannot take pushes right now; nothing was pushed. Retry later.',
  },
  // Socket joins.
  invalid_channel: { retry: false, socket: 'ack', message: 'Not a valid channel name.' },
  too_many_channels: {
    retry: false,
    socket: 'ack',
    message: 'This connection holds as many channels as it may.',
  },
  // A join still pending when a backend unsubscribed the user from its channel (control API).
  unsubscribed: {
    retry: false,
    socket: 'ack',
    message: 'A backend unsubscribed this user from the channel; do not rejoin on your own.',
  },
  // Sessions the server ends (`error` event, then a server-side disconnect).
  disconnected: {
    retry: false,
    socket: 'close',
    message: 'A backend disconnected this user; do not reconnect on your own.',
  },
  // Socket connections refused: the token (`connect_error` "unauthorized").
  missing_token: { retry: false, socket: 'connect', message: 'No token in the handshake.' },
  invalid_token: { retry: false, socket: 'connect', message: 'The token is not valid.' },
  invalid_signature: { retry: false, socket: 'connect', message: 'The token signature is wrong.' },
  algorithm_not_allowed: {
    retry: false,
    socket: 'connect',
    message: 'The token is signed with an algorithm this server does not accept.',
  },
  token_expired: {
    retry: false,
    socket: 'connect',
    message: 'The token expired; reconnect with a fresh one.',
  },
  token_not_yet_valid: { retry: true, socket: 'connect', message: 'The token is not valid yet.' },
  invalid_issuer: { retry: false, socket: 'connect', message: 'The token has the wrong issuer.' },
  invalid_audience: {
    retry: false,
    socket: 'connect',
    message: 'The token is not for this audience.',
  },
  missing_exp: { retry: false, socket: 'connect', message: 'The token has no expiry.' },
  missing_sub: { retry: false, socket: 'connect', message: 'The token names no user (sub).' },
  // Socket connections refused: capacity (`connect_error` "unavailable"); back off and retry.
  node_full: {
    retry: true,
    socket: 'connect',
    message: 'This node holds as many sockets as it may.',
  },
  connect_rate_limited: {
    retry: true,
    socket: 'connect',
    message: 'This node admits no more connections this second.',
  },
  too_many_user_connections: {
    retry: true,
    socket: 'connect',
    message: 'This user holds as many sockets on this node as it may.',
  },
} as const satisfies Record<
  string,
  { status?: number; retry: boolean; socket?: 'ack' | 'connect' | 'close'; message: string }
>;

/** A code of the catalogue. */
export type ErrorCode = keyof typeof errorCatalogue;

/** The codes the HTTP API answers with (those with a status). */
export type HttpErrorCode = {
  [C in ErrorCode]: (typeof errorCatalogue)[C] extends { status: number } ? C : never;
}[ErrorCode];

/** Join refusals, as `{ ok: false, error }` (docs/protocol.md, "join"). */
export type JoinError =
  | 'forbidden'
  | 'invalid_channel'
  | 'too_many_channels'
  | 'rate_limited'
  | 'invalid_request'
  | 'unsubscribed';

/** Why a socket token was refused: the `data.code` of the client's `connect_error`. */
export type TokenRefusal =
  | 'missing_token'
  | 'token_expired'
  | 'token_not_yet_valid'
  | 'invalid_signature'
  | 'algorithm_not_allowed'
  | 'invalid_issuer'
  | 'invalid_audience'
  | 'missing_exp'
  | 'missing_sub'
  | 'invalid_token';

/** Why a node refused a connection for capacity (`connect_error` `"unavailable"`). */
export type CapacityCode = 'node_full' | 'connect_rate_limited' | 'too_many_user_connections';

/**
 * The one error type: a catalogue code (never an HTTP status: the HTTP edge maps it), a sentence
 * and optional details.
 */
export class PushcastError extends Error {
  readonly code: HttpErrorCode;
  readonly details: Record<string, unknown> | undefined;
  /** Seconds for a `Retry-After` header (429, 503). */
  readonly retryAfterS: number | undefined;

  constructor(
    code: HttpErrorCode,
    message?: string,
    options: { details?: Record<string, unknown>; retryAfterS?: number; cause?: unknown } = {},
  ) {
    super(message ?? errorCatalogue[code].message, { cause: options.cause });
    this.name = 'PushcastError';
    this.code = code;
    this.details = options.details;
    this.retryAfterS = options.retryAfterS;
  }

  /** Whether the same request may succeed later. */
  get retryable(): boolean {
    return errorCatalogue[this.code].retry;
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
  control:
    'Some node did not answer in time, so the action may have reached only part of the cluster; retry (it is idempotent).',
} as const;

/** A 503 `unavailable` with `Retry-After: 1` for one of the known reasons. */
export function unavailable(
  reason: keyof typeof UNAVAILABLE,
  options: { details?: Record<string, unknown>; cause?: unknown } = {},
): PushcastError {
  return new PushcastError('unavailable', UNAVAILABLE[reason], { retryAfterS: 1, ...options });
}
