import express from 'express';
import { z } from 'zod';
import type { Bus } from '../delivery/bus.js';
import { callerOf, requireChannel } from './api-auth.js';
import { channelParam, invalidQuery } from './cluster-routes.js';
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
  bus: Bus;
  authenticate: (scope: string) => RequestHandler;
}

/** `GET /channels/:channel/history` (docs/protocol.md, "Reading and operating routes"). */
export function channelRoutes(deps: ChannelRouteDeps): express.Router {
  const router = express.Router();

  router.get('/channels/:channel/history', deps.authenticate('read'), async (req, res) => {
    const channel = channelParam(req.params.channel);
    requireChannel(callerOf(req), channel, 'read');
    const query = historyQuerySchema.safeParse(req.query);
    if (!query.success) throw invalidQuery(query.error);
    const { since, limit } = query.data;
    if (since !== undefined && !parseOffset(since))
      throw new PushcastError('invalid_request', 'since: not an offset this server gave out', {
        details: { field: 'since' },
      });
    const page = await deps.bus.history(channel, { since, limit });
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
