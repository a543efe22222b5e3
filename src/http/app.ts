import type { RequestListener } from 'node:http';
import type { HelmetOptions } from 'helmet';
import express, {
  type NextFunction,
  type Request,
  type RequestHandler,
  type Response,
} from 'express';
import type { Logger } from 'pino';
import type { DefaultAuth, Hooks } from '../auth/hooks.js';
import type { Instrumentation } from '../metrics/instrumentation.js';
import type { Config } from '../config/schema.js';
import type { IdempotencyStore } from '../delivery/idempotency.js';
import type { PushPipeline } from '../delivery/pipeline.js';
import { PushcastError } from '../errors.js';
import { authenticateRequest, requireScope, type Authorize } from './api-auth.js';
import { errorHandler, sendError } from './errors.js';
import { pushRoutes } from './push-routes.js';
import { channelRoutes } from './channel-routes.js';
import type { Bus } from '../delivery/bus.js';
import type { PushLimiter } from '../limits/push-limiter.js';
import type { ClusterControl } from '../cluster/cluster-control.js';
import type { ClusterView } from '../cluster/cluster-view.js';
import type { ChannelMessage } from '../delivery/message.js';
import type { PushMetrics } from '../metrics/metrics.js';
import { adminApiRoutes, adminPageRoute } from './admin-routes.js';
import { clusterRoutes } from './cluster-routes.js';
import { controlRoutes } from './control-routes.js';
import { openApiDocument } from './openapi.js';
import { apiSchemas } from './schemas.js';
import { requestContext, securityHeaders, type ApiFields } from './request-context.js';

/** What the HTTP layer needs from the rest of the server. */
export interface HttpDeps {
  config: Config;
  log: Logger;
  hooks: Hooks;
  defaults: DefaultAuth;
  pipeline: PushPipeline;
  idempotency: IdempotencyStore;
  /** `ready`: accepting traffic; anything else answers /readyz 503. */
  state(): 'starting' | 'ready' | 'draining' | 'stopped';
  /** False once a draining node stops taking requests (after the shutdown delay). */
  accepting(): boolean;
  bus: Bus;
  /** Cluster-wide counts and node stats. */
  view: ClusterView;
  /** The control API's actions on every node (disconnect a user, unsubscribe one). */
  control: ClusterControl;
  metrics: PushMetrics;
  /** The per-API-key push limit. */
  pushLimiter: PushLimiter;
  /** The PushEx-named instrumentation events. */
  instrumentation: Instrumentation;
  /** Streams a channel's live messages on this node (admin console). */
  watch(channel: string, listener: (message: ChannelMessage) => void): Promise<() => void>;
  node: string;
}

/**
 * Standard security headers on every answer (helmet's). The API answers JSON only, so its CSP
 * allows nothing at all (the admin page sets its own); HSTS is left to the TLS terminator, which
 * knows whether this host is served over HTTPS.
 */
export const SECURITY_HEADERS: HelmetOptions = {
  contentSecurityPolicy: {
    useDefaults: false,
    directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] },
  },
  strictTransportSecurity: false,
};

/** Express request with what pushcast's middleware adds. */
interface ApiRequest extends Request, ApiFields {}

/**
 * The HTTP server's request listener: the push routes, the server's hottest, straight on Node's
 * request and response (no router, no Express request and response objects); everything else
 * through the Express app (operations routes, the reading and control API, one error mapping).
 */
export function createHttpApp(deps: HttpDeps): RequestListener {
  const { config, log } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  const setSecurityHeaders = securityHeaders(SECURITY_HEADERS);
  app.use((_req, res, next) => {
    setSecurityHeaders(res);
    next();
  });

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', (_req, res) => {
    const state = deps.state();
    const ready = state === 'ready' && deps.bus.ready();
    res
      .status(ready ? 200 : 503)
      .json({ status: ready ? 'ready' : state === 'ready' ? 'bus_unavailable' : state });
  });

  app.get('/metrics', async (_req, res) => {
    res.setHeader('Content-Type', deps.metrics.registry.contentType);
    res.send(await deps.metrics.registry.metrics());
  });
  app.use(adminPageRoute());
  // Public, like any API's documentation; generated from the schemas that validate requests.
  const openapi = JSON.stringify(openApiDocument(config.limits));
  app.get('/api/openapi.json', (_req, res) => {
    res.type('json').send(openapi);
  });

  const begin = requestContext(deps);
  const push = pushRoutes({
    ...deps,
    limiter: deps.pushLimiter,
    schemas: apiSchemas(config.limits),
    authorize: authorize(deps),
    begin,
  });
  // The same handlers for the spellings Express's routing also takes (a query string, a trailing
  // slash, another letter case), ahead of the API's own context middleware: they start their own.
  // Not for OPTIONS, which a router answers by itself once its routes are passed: the context
  // middleware answers it. A router under /api, like the API's other routes, so a request it
  // does not take (HEAD) is counted under the route's own pattern (request-context.ts).
  const spellings = express.Router();
  for (const [path, handler] of push) spellings.post(path, handler);
  app.use('/api', (req, res, next) => {
    if (req.method === 'OPTIONS') next();
    else spellings(req, res, next);
  });
  app.use('/api', contextMiddleware(begin));
  app.use(
    '/api',
    channelRoutes({
      bus: deps.bus,
      authenticate: authenticate(deps),
    }),
  );
  app.use('/api', clusterRoutes({ view: deps.view, authenticate: authenticate(deps) }));
  app.use('/api', controlRoutes({ control: deps.control, authenticate: authenticate(deps) }));
  app.use(
    '/api',
    adminApiRoutes({ authenticate: authenticate(deps), watch: (c, l) => deps.watch(c, l) }),
  );

  app.use((_req, res) => {
    sendError(res, new PushcastError('not_found'));
  });
  app.use(errorHandler(log));
  const direct = new Map([...push].map(([path, handler]) => [`/api${path}`, handler]));
  return (req, res) => {
    const handler = req.method === 'POST' ? direct.get(req.url ?? '') : undefined;
    if (handler) {
      setSecurityHeaders(res);
      handler(req, res);
    } else void app(req, res);
  };
}

/** The Express middleware around {@link requestContext}; it also answers OPTIONS itself. */
function contextMiddleware(begin: ReturnType<typeof requestContext>): RequestHandler {
  return (req: ApiRequest, res: Response, next: NextFunction) => {
    begin(req, res);
    // The router would answer OPTIONS itself with a text body; the API has no CORS preflight to
    // serve (it is called by backends), so it says which methods exist and nothing more.
    if (req.method === 'OPTIONS') {
      res.setHeader('Allow', 'GET, POST');
      res.status(204).end();
      return;
    }
    next();
  };
}

function authorize(deps: HttpDeps): Authorize {
  return async (request, scope) => {
    const caller = await authenticateRequest(request, deps.hooks, deps.defaults);
    requireScope(caller, scope);
    return caller;
  };
}

/** Middleware factory: authenticate, then check the scope. */
function authenticate(deps: HttpDeps): (scope: string) => RequestHandler {
  const check = authorize(deps);
  return (scope) => async (req: ApiRequest, _res, next) => {
    // The path as the router has it under /api (what authenticateApi hooks have always seen).
    req.caller = await check({ method: req.method, path: req.path, headers: req.headers }, scope);
    next();
  };
}
