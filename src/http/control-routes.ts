import express, { type RequestHandler } from 'express';
import { z } from 'zod';
import { PushcastError } from '../errors.js';
import { callerOf, requireChannel, requireWholeCluster } from './api-auth.js';
import { channelParam } from './cluster-routes.js';
import { requireBody, requireJson } from './json-intake.js';

/**
 * A user id as the control API takes it: the token's `sub` (or the id a hooks module gave), which
 * can be any non-empty string; bounded so that a path or body cannot carry a megabyte of it.
 */
export const userIdSchema = z
  .string()
  .min(1, 'a user id is 1-1000 characters')
  .max(1000, 'a user id is 1-1000 characters')
  .meta({ description: 'the user: the token `sub` (or the id the hooks gave)', example: '42' });

/** Body of `POST /api/channels/:channel/unsubscribe`. */
export const unsubscribeBodySchema = z.object({ userId: userIdSchema });

/** Answer of `POST /api/users/:userId/disconnect`. */
export const disconnectResultSchema = z.object({
  disconnected: z
    .number()
    .int()
    .min(0)
    .meta({ description: 'connections closed, cluster-wide (Socket.IO and Phoenix)' }),
});

/** Answer of `POST /api/channels/:channel/unsubscribe`. */
export const unsubscribeResultSchema = z.object({
  unsubscribed: z.number().int().min(0).meta({
    description: 'connections of the user taken out of the channel (or out of a pending join)',
  }),
});

// The body holds one user id; anything much larger is not a control request.
const MAX_CONTROL_BODY_BYTES = 16 * 1024;

interface ControlRouteDeps {
  control: {
    disconnect(userId: string): Promise<number>;
    unsubscribe(userId: string, channel: string): Promise<number>;
  };
  authenticate: (scope: string) => RequestHandler;
}

/**
 * The control API (docs/protocol.md, "Control routes"): a backend disconnects a user, or
 * unsubscribes them from a channel, on every node. Scope `control` (which `admin` includes).
 * Check order: 401, 403 scope, 403 channel limits (disconnect), 415, 400, 422, 403 channel
 * limits (unsubscribe), 503.
 */
export function controlRoutes(deps: ControlRouteDeps): express.Router {
  const router = express.Router();
  const control = deps.authenticate('control');

  router.post('/users/:userId/disconnect', control, async (req, res) => {
    // A user's connections hold channels outside any key's patterns.
    requireWholeCluster(callerOf(req), 'disconnect users (their connections reach every channel)');
    const userId = valid(userIdSchema, req.params.userId, 'userId');
    res.json({ disconnected: await deps.control.disconnect(userId) });
  });

  router.post(
    '/channels/:channel/unsubscribe',
    control,
    requireJson,
    requireBody,
    express.json({ limit: MAX_CONTROL_BODY_BYTES, type: () => true }),
    async (req, res) => {
      const channel = channelParam(req.params.channel);
      const { userId } = valid(unsubscribeBodySchema, req.body, 'body');
      requireChannel(callerOf(req), channel, 'unsubscribe users from');
      res.json({ unsubscribed: await deps.control.unsubscribe(userId, channel) });
    },
  );

  return router;
}

/**
 * The value if it matches the schema, else `422 invalid_request` naming the field: the one in
 * the issue's path, or `where` for the value as a whole.
 */
function valid<T>(schema: z.ZodType<T>, value: unknown, where: string): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const field = issue.path.length > 0 ? issue.path.join('.') : where;
  throw new PushcastError('invalid_request', `${field}: ${issue.message}`, { details: { field } });
}
