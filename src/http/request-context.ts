import { randomUUID } from 'node:crypto';
import { ServerResponse, type IncomingMessage } from 'node:http';
import helmet, { type HelmetOptions } from 'helmet';
import type { Logger } from 'pino';
import { unavailable } from '../errors.js';
import type { Instrumentation } from '../metrics/instrumentation.js';
import type { PushMetrics } from '../metrics/metrics.js';
import type { ApiCaller } from './api-auth.js';

/** What pushcast's API handling adds to a request, with Express's router or without it. */
export interface ApiFields {
  requestId?: string;
  caller?: ApiCaller;
  /** The route's pattern as a metrics label, set by the push routes (however they were reached). */
  routePattern?: string;
}

/** A Node request as the push routes see it (Express's request, when it routed them, is one too). */
export type ApiMessage = IncomingMessage & ApiFields & { body?: unknown };

/** What every API request does first, whichever way it is routed. */
export interface RequestContextDeps {
  log: Logger;
  metrics: PushMetrics;
  instrumentation: Instrumentation;
  /** False once a draining node stops taking requests (after the shutdown delay). */
  accepting(): boolean;
}

/**
 * Starts an API request: its id (`X-Request-Id`), the access log, the request metric and the
 * api_requested/api_processed hooks once answered, and `Connection: close` on any answer written
 * once the node stops taking traffic. Throws 503 `draining` when it already has.
 */
export function requestContext(
  deps: RequestContextDeps,
): (req: ApiMessage, res: ServerResponse) => void {
  // Any answer written once the node stops taking traffic (this one, or one of a request taken
  // just before) tells the client to drop the connection and come back through the balancer.
  // One function for every response (no closure per request); nothing wraps writeHead before it.
  const drainAwareWriteHead = function (this: ServerResponse, ...args: unknown[]) {
    if (!deps.accepting() && !this.headersSent) this.setHeader('Connection', 'close');
    return (ServerResponse.prototype.writeHead as (...a: unknown[]) => ServerResponse).apply(
      this,
      args,
    );
  } as ServerResponse['writeHead'];
  return (req, res) => {
    const header = req.headers['x-request-id'];
    const requestId =
      typeof header === 'string' && /^[\w\-.:]{1,100}$/.test(header) ? header : randomUUID();
    req.requestId = requestId;
    res.setHeader('X-Request-Id', requestId);
    const started = performance.now();
    const method = req.method ?? 'GET';
    // Query strings can hold offsets and prefixes, never secrets; still, log the path only.
    const path = pathOf(req);
    deps.instrumentation.apiRequested({ requestId, method, path });
    res.on('finish', () => {
      const durationMs = performance.now() - started;
      // The route pattern, not the path: channel names must not become label values.
      const matched = (req as { route?: { path: string } }).route;
      const route = req.routePattern ?? (matched ? `/api${matched.path}` : '(unmatched)');
      deps.metrics.apiRequest(route, method, res.statusCode, durationMs / 1000);
      if (deps.log.isLevelEnabled('info'))
        deps.log.info(
          {
            requestId,
            method,
            path,
            status: res.statusCode,
            ms: Math.round(durationMs),
            keyId: req.caller?.keyId,
          },
          'api request',
        );
      deps.instrumentation.apiProcessed({
        requestId,
        method,
        path,
        status: res.statusCode,
        durationMs,
      });
    });
    res.writeHead = drainAwareWriteHead;
    if (!deps.accepting()) throw unavailable('draining');
  };
}

/** The request's path without its query (Express's `originalUrl` where a router trimmed `url`). */
export function pathOf(req: IncomingMessage): string {
  const url = (req as { originalUrl?: string }).originalUrl ?? req.url ?? '/';
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

/**
 * Helmet's headers, worked out once. With the options used here every header helmet sets is the
 * same on every answer (no nonces or other per-request values), so helmet runs once against a
 * recorder at startup and each answer gets the recorded headers in one pass, instead of through
 * helmet's chain of a dozen middleware functions per request.
 */
export function securityHeaders(options: HelmetOptions): (res: ServerResponse) => void {
  const headers: Array<[string, string]> = [];
  const recorder = {
    setHeader(name: string, value: unknown) {
      headers.push([name, String(value)]);
    },
    // X-Powered-By: Express's own, switched off where the app is made (app.ts).
    removeHeader() {},
  };
  let failure: unknown;
  helmet(options)({} as never, recorder as never, (err?: unknown) => (failure = err));
  // Only a bad option fails here, at startup.
  if (failure !== undefined) throw new Error('helmet refused its options', { cause: failure });
  return (res) => {
    for (const [name, value] of headers) res.setHeader(name, value);
  };
}
