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

/** Authenticates a request through the hooks module or the built-in keys. */
export async function authenticateRequest(
  req: Request,
  hooks: Hooks,
  defaults: DefaultAuth,
): Promise<ApiCaller> {
  const info: ApiRequestInfo = { method: req.method, path: req.path, headers: req.headers };
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
  return {
    keyId: identity.keyId,
    scopes: new Set(identity.scopes ?? []),
    channels: identity.channels ? ChannelPatterns.of(identity.channels) : undefined,
  };
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
  if (!caller.channels) return;
  for (const channel of channels)
    if (!caller.channels.matches(channel))
      throw new PushcastError('forbidden', `This API key may not push to channel "${channel}".`, {
        details: { channel },
      });
}
