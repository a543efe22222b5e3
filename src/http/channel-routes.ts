import express from 'express';
import { z } from 'zod';
import type { Bus } from '../delivery/bus.js';
import { isChannelName, roomOf } from '../delivery/names.js';
import { parseOffset } from '../delivery/offset.js';
import { PushcastError } from '../errors.js';
import type { RequestHandler } from 'express';

/** Query of `GET /api/channels/:channel/history`. */
export const historyQuerySchema = z.object({
  since: z
    .string()
    .max(100)
    .optional()
    .meta({ description: 'the last offset seen; omitted: the newest messages' }),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

interface ChannelRouteDeps {
  bus: () => Bus;
  authenticate: (scope: string) => RequestHandler;
  /** Sockets subscribed to the room across the cluster. */
  subscribers(room: string): Promise<number>;
}

/** `GET /channels/:channel` and `GET /channels/:channel/history` (CONTRACT section 3). */
export function channelRoutes(deps: ChannelRouteDeps): express.Router {
  const router = express.Router();

  router.get('/channels/:channel', deps.authenticate('read'), async (req, res) => {
    const channel = channelParam(req.params.channel);
    res.json({ channel, subscribers: await deps.subscribers(roomOf(channel)) });
  });

  router.get('/channels/:channel/history', deps.authenticate('read'), async (req, res) => {
    const channel = channelParam(req.params.channel);
    const query = historyQuerySchema.safeParse(req.query);
    if (!query.success) {
      const issue = query.error.issues[0]!;
      throw new PushcastError('invalid_request', `${issue.path.join('.')}: ${issue.message}`, {
        details: { field: issue.path.join('.') },
      });
    }
    const { since, limit } = query.data;
    if (since !== undefined && !parseOffset(since))
      throw new PushcastError('invalid_request', 'since: not an offset this server gave out', {
        details: { field: 'since' },
      });
    const page = await deps.bus().history(channel, { since, limit });
    res.json({
      channel,
      messages: page.messages,
      ...(page.top !== undefined ? { offset: page.top } : {}),
      // false: history no longer reaches back to `since` (trimmed, expired or restarted).
      complete: page.complete,
    });
  });

  return router;
}

function channelParam(value: unknown): string {
  if (!isChannelName(value))
    throw new PushcastError('invalid_request', 'channel: not a valid channel name', {
      details: { field: 'channel' },
    });
  return value;
}
