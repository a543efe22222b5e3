import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ConfigError } from '../config/load.js';

/** What the server knows of a connecting socket's handshake. */
export interface HandshakeInfo {
  auth: Record<string, unknown>;
  headers: Record<string, string | string[] | undefined>;
  query: Record<string, unknown>;
  address: string;
}

/** Who a socket is: the result of socket authentication. */
export interface SocketIdentity {
  userId?: string | undefined;
  /** Channel names and `*` prefix patterns the socket may join. */
  channels?: string[] | undefined;
  /** Plain JSON kept with the socket (it crosses nodes: no timers, sets or classes). */
  data?: Record<string, unknown> | undefined;
  /** Token expiry (seconds since epoch): the connection is closed then unless refreshed. */
  exp?: number | undefined;
}

/** A connected socket, as hooks see it. */
export interface SocketContext {
  socketId: string;
  userId: string | undefined;
  channels: readonly string[];
  data: Record<string, unknown>;
}

/** An authorization answer: true or undefined allows; anything else (false, `{ reject }`) refuses. */
export type JoinDecision = boolean | undefined | { reject: string };

/** What the server knows of an API request, for API authentication. */
export interface ApiRequestInfo {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
}

/** The caller of the API, as the built-in or a hook authenticated it. */
export interface ApiIdentity {
  keyId: string;
  scopes: readonly string[];
  /** Channel patterns the caller may push to; undefined = all. */
  channels?: readonly string[] | undefined;
}

/** A push as instrumentation listeners see it. */
export interface PushInfo {
  id: string;
  channels: readonly string[];
  event: string;
  ts: number;
}

/** The built-in implementations, handed to hooks that extend rather than replace them. */
export interface DefaultAuth {
  authenticateSocket(handshake: HandshakeInfo): Promise<SocketIdentity>;
  authorizeJoin(socket: SocketContext, channel: string, params: unknown): Promise<JoinDecision>;
  authenticateApi(request: ApiRequestInfo): Promise<ApiIdentity>;
}

/**
 * The hooks contract (README "Hooks", docs/architecture.md). A module named by `PUSHCAST_HOOKS` exports
 * any of these (named exports or a default object). Throwing from an authenticate hook refuses.
 */
export interface Hooks {
  authenticateSocket?(
    handshake: HandshakeInfo,
    defaults: DefaultAuth,
  ): SocketIdentity | Promise<SocketIdentity>;
  authorizeJoin?(
    socket: SocketContext,
    channel: string,
    params: unknown,
    defaults: DefaultAuth,
  ): JoinDecision | Promise<JoinDecision>;
  authenticateApi?(
    request: ApiRequestInfo,
    defaults: DefaultAuth,
  ): ApiIdentity | Promise<ApiIdentity>;
  /** A push was accepted by the API (PushEx `requested`). */
  requested?(push: PushInfo, ctx: { node: string }): void | Promise<void>;
  /** A push was written to this node's sockets of a channel (`delivered`, `count` sockets). */
  delivered?(
    push: PushInfo,
    ctx: { node: string; channel: string; count: number },
  ): void | Promise<void>;
  /** An API request arrived (PushEx `api_requested`). */
  apiRequested?(ctx: { requestId: string; method: string; path: string }): void | Promise<void>;
  /** An API request was answered (PushEx `api_processed`). */
  apiProcessed?(ctx: {
    requestId: string;
    method: string;
    path: string;
    status: number;
    durationMs: number;
  }): void | Promise<void>;
}

const HOOK_NAMES = [
  'authenticateSocket',
  'authorizeJoin',
  'authenticateApi',
  'requested',
  'delivered',
  'apiRequested',
  'apiProcessed',
] as const;

/** Loads the hooks module at `path` (relative to the working directory). */
export async function loadHooks(path: string, cwd: string = process.cwd()): Promise<Hooks> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(resolve(cwd, path)).href)) as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError(
      `invalid setting PUSHCAST_HOOKS (hooks): cannot load ${path} (${(err as Error).message})`,
    );
  }
  const source = (
    typeof mod.default === 'object' && mod.default !== null ? mod.default : mod
  ) as Record<string, unknown>;
  const hooks: Record<string, unknown> = {};
  for (const name of HOOK_NAMES) {
    const fn = source[name] ?? mod[name];
    if (fn === undefined) continue;
    if (typeof fn !== 'function')
      throw new ConfigError(`invalid setting PUSHCAST_HOOKS (hooks): ${name} must be a function`);
    hooks[name] = LISTENER_NAMES.has(name) ? settled(name, fn as Listener) : fn;
  }
  return hooks;
}

type Listener = (...args: unknown[]) => unknown;
const LISTENER_NAMES: ReadonlySet<string> = new Set([
  'requested',
  'delivered',
  'apiRequested',
  'apiProcessed',
]);

/**
 * Instrumentation listeners are called and forgotten. An `async` one that rejects would leave an
 * unhandled rejection, which ends a Node process: its failure is reported as a warning instead.
 * A synchronous throw still reaches the caller, which logs it.
 */
function settled(name: string, fn: Listener): Listener {
  return (...args: unknown[]): void => {
    const result = fn(...args);
    if (isThenable(result))
      result.then(undefined, (err: unknown) =>
        process.emitWarning(
          `pushcast: hooks listener ${name} failed: ${err instanceof Error ? err.message : String(err)}`,
          'PushcastHookWarning',
        ),
      );
  };
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}
