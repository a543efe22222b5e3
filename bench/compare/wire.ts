/**
 * A subscriber's side of a server's WebSocket protocol, spoken over a raw `ws` socket so the load
 * workers stay cheap: the handshake, joining channels, and telling pushed messages apart from
 * everything else without parsing them.
 */
import type { WebSocket } from 'ws';
import { jsonWire } from './json-wire.js';
import type { WireKind } from './load-messages.js';
import { socketIoWire } from './socketio-wire.js';

/** What a session tells its subscriber. */
export interface WireEvents {
  /** The connection is accepted and may join channels. */
  ready(): void;
  joined(channel: string): void;
  /** The server refused the connection (no channel) or a join, with its code. */
  refused(code: string, channel?: string): void;
  /** A pushed message, as the raw frame. */
  message(frame: Buffer): void;
}

/** One subscriber's protocol state. */
export interface WireSession {
  /** The WebSocket is open. */
  opened(): void;
  /** A frame arrived. */
  frame(data: Buffer): void;
  /** Asks to join a channel (answered through `joined` or `refused`). */
  join(channel: string): void;
}

/** A protocol: where to connect, and a session per connection. */
export interface Wire {
  url(httpUrl: string): string;
  session(ws: WebSocket, token: string | undefined, events: WireEvents): WireSession;
}

/** The protocol of a wire kind. */
export function wireOf(kind: WireKind): Wire {
  return kind === 'socketio' ? socketIoWire : jsonWire;
}
