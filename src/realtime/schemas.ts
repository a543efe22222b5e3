import { z } from 'zod';

/** `join` payload (docs/protocol.md, "Sockets"). The channel's charset is checked separately. */
export const joinSchema = z.object({
  channel: z.string(),
  since: z.string().max(100).optional(),
  params: z.unknown().optional(),
});

/** `leave` payload. */
export const leaveSchema = z.object({ channel: z.string() });

/** `refresh` payload. */
export const refreshSchema = z.object({ token: z.string().min(1).max(16_384) });

/** Join refusals (from the one catalogue in src/errors.ts). */
export type { JoinError } from '../errors.js';

/**
 * Why the server took a socket out of a channel it had joined: `forbidden`, a `refresh` no longer
 * allows the channel; `unsubscribed`, a server-side unsubscribe.
 */
export type LeftReason = 'forbidden' | 'unsubscribed';

/** Server to client: `emit("left", { channel, reason })`, once per channel taken away. */
export interface LeftEvent {
  channel: string;
  reason: LeftReason;
}

/** A JSON object (not an array, not null): what an event's payload or a handshake's `auth` must be. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
