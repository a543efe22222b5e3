import type { HandshakeInfo } from '../auth/hooks.js';
import type { ChannelMessage } from '../delivery/message.js';
import type { LeftEvent } from './schemas.js';

/** Who a connection is, as authentication found it: plain JSON, so it can cross nodes. */
export interface SessionIdentity {
  userId: string | undefined;
  channels: string[];
  data: Record<string, unknown>;
  /** Token expiry, seconds since epoch: the connection is closed then unless refreshed. */
  exp: number | undefined;
}

/**
 * Why the server closes a connection on its own (the client is told before the close):
 * `token_expired`, reconnect with a fresh token; `disconnected`, a backend ended the user's
 * connections (control API): do not reconnect on your own.
 */
export type CloseReason = 'token_expired' | 'disconnected';

/**
 * What a channel session needs from the connection it serves: a transport (Socket.IO today, a
 * Phoenix-protocol WebSocket next) only frames and carries; join, leave, refresh, recovery and
 * expiry live in the session, once for every transport.
 */
export interface SessionTransport {
  /** The connection id, in every log line about it. */
  readonly id: string;
  /** The handshake authentication saw: a refresh runs it again with the new token. */
  readonly handshake: HandshakeInfo;
  /** The identity in force; a refresh replaces it. */
  identity: SessionIdentity;
  /** True once the connection is gone: late work must not act on it. */
  readonly closed: boolean;
  /** The channel rooms the connection is in (room names, see delivery/names.ts). */
  rooms(): Iterable<string>;
  inRoom(room: string): boolean;
  /** From now on, the room's live messages reach this connection. */
  joinRoom(room: string): void;
  leaveRoom(room: string): void;
  /** One message, to this connection only (recovery hands over history this way). */
  send(message: ChannelMessage): void;
  /** The server took the connection out of a channel. */
  left(event: LeftEvent): void;
  /** Tells the client why, then closes the connection. */
  close(reason: CloseReason): void;
}
