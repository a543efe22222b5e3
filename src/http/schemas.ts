import { z } from 'zod';
import type { Config } from '../config/schema.js';
import { CHANNEL_NAME, EVENT_NAME } from '../delivery/names.js';

/** A channel name (docs/protocol.md, "Push API"). */
export const channelNameSchema = z
  .string()
  .regex(CHANNEL_NAME, 'channel names are 1-200 characters of A-Z a-z 0-9 _ - : . @ =')
  .meta({ example: 'user:42' });

/** An event name. */
export const eventNameSchema = z
  .string()
  .regex(EVENT_NAME, 'event names are 1-100 characters of A-Z a-z 0-9 _ - : .')
  .meta({ example: 'invoice.paid' });

/** The request schemas, sized by the configured limits. */
export function apiSchemas(limits: Config['limits']) {
  const push = z.object({
    channel: z.union(
      [
        channelNameSchema,
        z
          .array(channelNameSchema)
          .min(1, 'at least one channel')
          .max(limits.maxChannelsPerPush, `at most ${limits.maxChannelsPerPush} channels`),
      ],
      { error: 'a channel name or an array of channel names' },
    ),
    event: eventNameSchema,
    data: z
      .json()
      .meta({ description: `any JSON value; serialized at most ${limits.maxDataBytes} bytes` }),
  });
  // What parsePush checks of a body that came from JSON.parse: its `data` is JSON by construction,
  // and checking it again (z.json walks the whole value) would only cost time per push.
  const pushIntake = push.extend({ data: z.unknown() });
  const pushResponse = z.object({
    id: z
      .string()
      .meta({ description: 'push id: unique across the cluster, sorts by creation time' }),
    channel: z.array(channelNameSchema),
    event: eventNameSchema,
    data: z.json(),
  });
  const batch = z.object({
    pushes: z.array(z.unknown()).min(1).max(limits.maxBatch, `at most ${limits.maxBatch} pushes`),
  });
  const error = z.object({
    error: z.string(),
    code: z.string(),
    details: z.record(z.string(), z.unknown()).optional(),
  });
  const batchResponse = z.object({
    results: z.array(
      z.union([
        pushResponse.pick({ id: true, channel: true, event: true }),
        error.pick({ error: true, code: true }),
      ]),
    ),
  });
  return { push, pushIntake, pushResponse, batch, batchResponse, error };
}

/** The schemas built by {@link apiSchemas}. */
export type ApiSchemas = ReturnType<typeof apiSchemas>;
