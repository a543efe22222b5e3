import express, { type RequestHandler } from 'express';
import type { ChannelMessage } from '../delivery/message.js';
import { adminPage } from './admin-page.js';
import { callerOf, requireChannel } from './api-auth.js';
import { channelParam } from './cluster-routes.js';

interface AdminRouteDeps {
  authenticate: (scope: string) => RequestHandler;
  /** Streams a channel's live messages on this node until the returned function is called. */
  watch(channel: string, listener: (message: ChannelMessage) => void): Promise<() => void>;
}

/** The admin console page (public HTML; every call it makes needs an admin-scoped API key). */
export function adminPageRoute(): express.Router {
  const router = express.Router();
  router.get(['/admin', '/admin/'], (_req, res) => {
    // The page holds an admin API key while open: no framing (clickjacking), no other origin's
    // scripts, and its calls go to this server only.
    res.setHeader(
      'Content-Security-Policy',
      "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; " +
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'; object-src 'none'",
    );
    res.type('html').send(adminPage);
  });
  return router;
}

/** `GET /api/admin/watch?channel=`: a channel's live messages as server-sent events. */
export function adminApiRoutes(deps: AdminRouteDeps): express.Router {
  const router = express.Router();
  router.get('/admin/session', deps.authenticate('admin'), (req, res) => {
    res.json({ keyId: callerOf(req).keyId });
  });
  router.get('/admin/watch', deps.authenticate('admin'), async (req, res) => {
    const channel = channelParam(req.query.channel);
    requireChannel(callerOf(req), channel, 'watch');
    res.writeHead(200, {
      'Content-Type': 'text/event-stream',
      'Cache-Control': 'no-cache, no-transform',
      'X-Accel-Buffering': 'no',
    });
    res.write(`event: ready\ndata: ${JSON.stringify({ channel })}\n\n`);
    const stop = await deps.watch(channel, (m) => res.write(`data: ${JSON.stringify(m)}\n\n`));
    // Comments keep proxies from closing an idle stream.
    const heartbeat = setInterval(() => res.write(': keepalive\n\n'), 15_000);
    const end = (): void => {
      clearInterval(heartbeat);
      stop();
    };
    req.on('close', end);
    if (req.destroyed) end();
  });
  return router;
}
