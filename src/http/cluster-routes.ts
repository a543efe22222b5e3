import express, { type RequestHandler } from 'express';
import { z } from 'zod';
import type { ClusterView } from '../cluster/cluster-view.js';
import { isChannelName, roomOf } from '../delivery/names.js';
import { PushcastError } from '../errors.js';
import { callerOf, maySee, requireChannel, requireWholeCluster } from './api-auth.js';

/** Query of `GET /api/channels`. */
export const channelsQuerySchema = z.object({
  prefix: z.string().max(200).default('').meta({ description: 'only channels starting with this' }),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: z.string().max(200).optional().meta({ description: 'the `next` of the previous page' }),
});

interface ClusterRouteDeps {
  view: ClusterView;
  authenticate: (scope: string) => RequestHandler;
}

/** Channel occupancy, presence and node stats across the cluster (docs/protocol.md, "Reading and operating routes"). */
export function clusterRoutes(deps: ClusterRouteDeps): express.Router {
  const router = express.Router();
  const read = deps.authenticate('read');

  router.get('/channels', read, async (req, res) => {
    const q = channelsQuerySchema.safeParse(req.query);
    if (!q.success) throw invalidQuery(q.error);
    const { prefix, limit, cursor } = q.data;
    const caller = callerOf(req);
    // A channel-limited key lists only the channels it may read; the page is cut after filtering.
    const all = [...(await deps.view.channels(prefix))]
      .filter(([channel]) => (cursor === undefined || channel > cursor) && maySee(caller, channel))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const page = all.slice(0, limit);
    res.json({
      channels: page.map(([channel, subscribers]) => ({ channel, subscribers })),
      ...(all.length > limit ? { next: page.at(-1)![0] } : {}),
    });
  });

  router.get('/channels/:channel', read, async (req, res) => {
    const channel = channelParam(req.params.channel);
    requireChannel(callerOf(req), channel, 'read');
    res.json({ channel, subscribers: await deps.view.subscribers(roomOf(channel)) });
  });

  router.get('/channels/:channel/presence', read, async (req, res) => {
    const channel = channelParam(req.params.channel);
    requireChannel(callerOf(req), channel, 'read');
    const users = [...(await deps.view.presence(roomOf(channel)))]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([userId, connections]) => ({ userId, connections }));
    res.json({ channel, users, count: users.length });
  });

  router.get('/stats', read, async (req, res) => {
    requireWholeCluster(callerOf(req));
    const nodes = await deps.view.stats();
    const sum = (f: (n: (typeof nodes)[number]) => number) => nodes.reduce((a, n) => a + f(n), 0);
    res.json({
      nodes,
      totals: {
        nodes: nodes.length,
        sockets: sum((n) => n.sockets),
        subscriptions: sum((n) => n.subscriptions),
        requestedPerS: sum((n) => n.rates.requested10s),
        deliveredPerS: sum((n) => n.rates.delivered10s),
      },
    });
  });

  return router;
}

/** A channel route parameter, checked against the channel-name rule. */
export function channelParam(value: unknown): string {
  if (!isChannelName(value))
    throw new PushcastError('invalid_request', 'channel: not a valid channel name', {
      details: { field: 'channel' },
    });
  return value;
}

/** A 422 for a query that failed its schema. */
export function invalidQuery(error: z.ZodError): PushcastError {
  const issue = error.issues[0]!;
  const field = issue.path.join('.');
  return new PushcastError('invalid_request', `${field}: ${issue.message}`, { details: { field } });
}
