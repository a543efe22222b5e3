/** Base class of every error the SDK reports. */
export class PushcastClientError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = 'PushcastClientError';
  }
}

/** The server refused the connection (`connect_error` "unauthorized"); `code` says why. */
export class PushcastAuthError extends PushcastClientError {
  constructor(code: string) {
    super(`connection refused: ${code}`, code);
    this.name = 'PushcastAuthError';
  }
}

/** The server refused a join (`forbidden`, `invalid_channel`, `too_many_channels`, ...). */
export class PushcastJoinError extends PushcastClientError {
  constructor(
    readonly channel: string,
    code: string,
  ) {
    super(`cannot join ${channel}: ${code}`, code);
    this.name = 'PushcastJoinError';
  }
}

/**
 * The server refused the connection for capacity (`connect_error` "unavailable"): `node_full`,
 * `connect_rate_limited`, `too_many_user_connections`. The SDK retries by itself after a jittered
 * backoff, never sooner than `retryAfterMs` when the server gave one.
 */
export class PushcastUnavailableError extends PushcastClientError {
  constructor(
    code: string,
    readonly retryAfterMs?: number,
  ) {
    super(`connection refused for capacity: ${code}`, code);
    this.name = 'PushcastUnavailableError';
  }
}

/**
 * A backend ended this user's connection (the server's control API: `error` `disconnected`, then a
 * server-side disconnect). The SDK does not reconnect: the client is closed (state `closed`).
 * Create a new client to connect again, if the app decides the user may.
 */
export class PushcastDisconnectedError extends PushcastClientError {
  constructor(message: string) {
    super(`disconnected by the server: ${message}`, 'disconnected');
    this.name = 'PushcastDisconnectedError';
  }
}
