import type { Request } from 'express';
import { ApiKeyring, bearerToken } from '../auth/api-keys.js';
import type { ApiIdentity, ApiRequestInfo, DefaultAuth, Hooks } from '../auth/hooks.js';
import { ChannelPatterns } from '../auth/patterns.js';
import { PushcastError } from '../errors.js';

/** The authenticated caller of an API request. */
export interface ApiCaller {
  keyId: string;
  scopes: ReadonlySet<string>;
  channels: ChannelPatterns | undefined;
}

/** The built-in API authentication: bearer API keys, compared in constant time. */
export function builtInApiAuth(keyring: ApiKeyring): DefaultAuth['authenticateApi'] {
  return (request: ApiRequestInfo) => {
    const header = request.headers.authorization;
    const token = bearerToken(Array.isArray(header) ? header[0] : header);
    const principal = token === undefined ? undefined : keyring.verify(token);
    if (!principal) return Promise.reject(new PushcastError('unauthorized'));
    return Promise.resolve(principal);
  };
}

/** The request's caller, once authenticated and checked for the scope (401, 403). */
export type Authorize = (request: ApiRequestInfo, scope: string) => Promise<ApiCaller>;

/** Authenticates a request through the hooks module or the built-in keys. */
export async function authenticateRequest(
  info: ApiRequestInfo,
  hooks: Hooks,
  defaults: DefaultAuth,
): Promise<ApiCaller> {
  let identity: ApiIdentity;
  try {
    identity = hooks.authenticateApi
      ? await hooks.authenticateApi(info, defaults)
      : await defaults.authenticateApi(info);
  } catch (err) {
    if (err instanceof PushcastError) throw err;
    throw new PushcastError('unauthorized');
  }
  if (!identity || typeof identity.keyId !== 'string') throw new PushcastError('unauthorized');
  const scopes = new Set(identity.scopes ?? []);
  // `admin` may do everything `control` may (the admin console disconnects and unsubscribes
  // users): decided here once, for configured keys and hook identities alike.
  if (scopes.has('admin')) scopes.add('control');
  return {
    keyId: identity.keyId,
    scopes,
    channels: identity.channels ? ChannelPatterns.of(identity.channels) : undefined,
  };
}

/** The caller an `authenticate(scope)` middleware put on the request. */
export function callerOf(req: Request): ApiCaller {
  const caller = (req as Request & { caller?: ApiCaller }).caller;
  // Routes are mounted behind the authenticate middleware; reaching here without it is a bug.
  if (!caller) throw new PushcastError('unauthorized');
  return caller;
}

/** Throws 403 unless the caller holds the scope. */
export function requireScope(caller: ApiCaller, scope: string): void {
  if (!caller.scopes.has(scope))
    throw new PushcastError('forbidden', `This API key lacks the "${scope}" scope.`, {
      details: { scope },
    });
}

/** Throws 403 naming the first channel the caller may not push to. */
export function requireChannels(caller: ApiCaller, channels: readonly string[]): void {
  for (const channel of channels) requireChannel(caller, channel, 'push to');
}

/**
 * Throws 403 unless the caller's channel patterns cover `channel`. Every route that names a
 * channel goes through here, so a channel-limited key reads and watches no more than it pushes.
 */
export function requireChannel(caller: ApiCaller, channel: string, verb = 'access'): void {
  if (caller.channels && !caller.channels.matches(channel))
    throw new PushcastError('forbidden', `This API key may not ${verb} channel "${channel}".`, {
      details: { channel },
    });
}

/** Whether the caller may see `channel` (for routes that list channels). */
export function maySee(caller: ApiCaller, channel: string): boolean {
  return !caller.channels || caller.channels.matches(channel);
}

/**
 * Throws 403 for a channel-limited caller: answers about the whole cluster (every node's socket
 * and push counts) say something about every channel, and actions on a whole user (disconnect)
 * reach every channel the user holds, so only keys with no channel limit get them.
 */
export function requireWholeCluster(caller: ApiCaller, what = 'see the whole cluster'): void {
  if (caller.channels)
    throw new PushcastError(
      'forbidden',
      `This API key is limited to some channels and may not ${what}.`,
      { details: { scope: 'cluster' } },
    );
}
