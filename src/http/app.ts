import { randomUUID } from 'node:crypto';
import { ServerResponse } from 'node:http';
import helmet, { type HelmetOptions } from 'helmet';
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
import { PushcastError, unavailable } from '../errors.js';
import { authenticateRequest, requireScope, type ApiCaller } from './api-auth.js';
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
export interface ApiRequest extends Request {
  requestId?: string;
  caller?: ApiCaller;
}

/** The Express app: push API, operations routes, one error mapping. */
export function createHttpApp(deps: HttpDeps): express.Express {
  const { config, log } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(securityHeaders(SECURITY_HEADERS));

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

  app.use('/api', requestContext(deps));
  const limiter = deps.pushLimiter;
  const schemas = apiSchemas(config.limits);
  app.use(
    '/api',
    pushRoutes({
      ...deps,
      limiter,
      schemas,
      authorize: authorize(deps),
    }),
  );
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
  return app;
}

/**
 * Helmet's headers, worked out once. With the options used here every header helmet sets is the
 * same on every answer (no nonces or other per-request values), so helmet runs once against a
 * recorder at startup and each answer gets the recorded headers in one pass, instead of through
 * helmet's chain of a dozen middleware functions per request.
 */
function securityHeaders(options: HelmetOptions): RequestHandler {
  const headers: Array<[string, string]> = [];
  const recorder = {
    setHeader(name: string, value: unknown) {
      headers.push([name, String(value)]);
    },
    // X-Powered-By: Express's own, already switched off (app.disable above).
    removeHeader() {},
  };
  let failure: unknown;
  helmet(options)({} as never, recorder as never, (err?: unknown) => (failure = err));
  // Only a bad option fails here, at startup.
  if (failure !== undefined) throw new Error('helmet refused its options', { cause: failure });
  return (_req, res, next) => {
    for (const [name, value] of headers) res.setHeader(name, value);
    next();
  };
}

/** Request id, draining refusal, access log and the api_requested/api_processed hooks. */
function requestContext(deps: HttpDeps): RequestHandler {
  // Any answer written once the node stops taking traffic (this one, or one of a request taken
  // just before) tells the client to drop the connection and come back through the balancer.
  // One function for every response (no closure per request); nothing wraps writeHead before it.
  const drainAwareWriteHead = function (this: ServerResponse, ...args: unknown[]) {
    if (!deps.accepting() && !this.headersSent) this.setHeader('Connection', 'close');
    return (ServerResponse.prototype.writeHead as (...a: unknown[]) => ServerResponse).apply(
      this,
      args,
    );
  } as Response['writeHead'];
  return (req: ApiRequest, res: Response, next: NextFunction) => {
    const header = req.headers['x-request-id'];
    const requestId =
      typeof header === 'string' && /^[\w\-.:]{1,100}$/.test(header) ? header : randomUUID();
    req.requestId = requestId;
    res.setHeader('X-Request-Id', requestId);
    const started = performance.now();
    // Query strings can hold offsets and prefixes, never secrets; still, log the path only.
    const path = req.originalUrl.split('?')[0] ?? req.path;
    deps.instrumentation.apiRequested({ requestId, method: req.method, path });
    res.on('finish', () => {
      const durationMs = performance.now() - started;
      // The route pattern, not the path: channel names must not become label values.
      const route = req.route ? `/api${(req.route as { path: string }).path}` : '(unmatched)';
      deps.metrics.apiRequest(route, req.method, res.statusCode, durationMs / 1000);
      if (deps.log.isLevelEnabled('info'))
        deps.log.info(
          {
            requestId,
            method: req.method,
            path,
            status: res.statusCode,
            ms: Math.round(durationMs),
            keyId: req.caller?.keyId,
          },
          'api request',
        );
      deps.instrumentation.apiProcessed({
        requestId,
        method: req.method,
        path,
        status: res.statusCode,
        durationMs,
      });
    });
    res.writeHead = drainAwareWriteHead;
    if (!deps.accepting()) throw unavailable('draining');
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

/** The request's caller, once authenticated and checked for the scope (401, 403). */
export type Authorize = (req: ApiRequest, scope: string) => Promise<ApiCaller>;

function authorize(deps: HttpDeps): Authorize {
  return async (req, scope) => {
    const caller = await authenticateRequest(req, deps.hooks, deps.defaults);
    requireScope(caller, scope);
    return caller;
  };
}

/** Middleware factory: authenticate, then check the scope. */
function authenticate(deps: HttpDeps): (scope: string) => RequestHandler {
  const check = authorize(deps);
  return (scope) => async (req: ApiRequest, _res, next) => {
    req.caller = await check(req, scope);
    next();
  };
}
