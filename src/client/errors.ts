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
