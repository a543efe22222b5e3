import { z } from 'zod';

/** `join` payload (CONTRACT section 2). The channel's charset is checked separately. */
export const joinSchema = z.object({
  channel: z.string(),
  since: z.string().max(100).optional(),
  params: z.unknown().optional(),
});

/** `leave` payload. */
export const leaveSchema = z.object({ channel: z.string() });

/** `refresh` payload. */
export const refreshSchema = z.object({ token: z.string().min(1).max(16_384) });

/** Join refusals, as `{ ok: false, error }`. */
export type JoinError =
  'forbidden' | 'invalid_channel' | 'too_many_channels' | 'rate_limited' | 'invalid_request';
