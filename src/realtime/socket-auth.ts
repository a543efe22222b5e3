import type {
  DefaultAuth,
  HandshakeInfo,
  Hooks,
  SocketContext,
  SocketIdentity,
} from '../auth/hooks.js';
import type { TokenVerifier } from '../auth/jwt.js';
import { TokenError } from '../auth/jwt.js';
import { ChannelPatterns } from '../auth/patterns.js';
import { isPlainObject } from './schemas.js';
import type { SessionIdentity } from './session-transport.js';

/** The built-in socket authentication: a JWT in `auth.token`. */
export function builtInSocketAuth(verifier: TokenVerifier): DefaultAuth['authenticateSocket'] {
  return async (handshake: HandshakeInfo): Promise<SocketIdentity> => {
    const claims = await verifier.verify(handshake.auth.token);
    // The handshake accepts a token until `exp` plus the clock tolerance; the connection must live
    // as long, or a token accepted within the tolerance would be closed the moment it connects.
    const exp = claims.exp === undefined ? undefined : claims.exp + verifier.clockToleranceS;
    return { userId: claims.userId, channels: claims.channels, exp };
  };
}

/** The built-in join rule: the channel is public, or the socket's `channels` claim covers it. */
export function builtInJoinAuth(publicChannels: readonly string[]): DefaultAuth['authorizeJoin'] {
  const publicPatterns = new ChannelPatterns(publicChannels);
  return (socket: SocketContext, channel: string) =>
    Promise.resolve(
      publicPatterns.matches(channel) || ChannelPatterns.of(socket.channels).matches(channel),
    );
}

/** Runs socket authentication through the hooks module or the built-in; throws on refusal. */
export async function authenticateSocket(
  handshake: HandshakeInfo,
  hooks: Hooks,
  defaults: DefaultAuth,
): Promise<SocketIdentity> {
  const identity: unknown = hooks.authenticateSocket
    ? await hooks.authenticateSocket(handshake, defaults)
    : await defaults.authenticateSocket(handshake);
  return checkedIdentity(identity);
}

/**
 * What of its handshake a connection keeps once authenticated, for a refresh's authentication
 * (which brings its own token). Only an `authenticateSocket` hook reads more of it than the token:
 * with one, the handshake without the token and without the WebSocket handshake's own headers;
 * without one, nothing (one shared empty handshake).
 */
export function handshakeToKeep(handshake: HandshakeInfo, hooks: Hooks): HandshakeInfo {
  if (!hooks.authenticateSocket) return NO_HANDSHAKE;
  let auth: Record<string, unknown> | undefined;
  for (const [name, value] of Object.entries(handshake.auth))
    if (name !== 'token') (auth ??= {})[name] = value;
  const headers: HandshakeInfo['headers'] = {};
  for (const [name, value] of Object.entries(handshake.headers))
    if (!upgradeOnly(name)) headers[name] = value;
  return { auth: auth ?? NO_AUTH, headers, query: handshake.query, address: handshake.address };
}

/** Whether a header is the WebSocket handshake's own: nothing a refresh's authentication needs. */
function upgradeOnly(name: string): boolean {
  return name === 'connection' || name === 'upgrade' || name.startsWith('sec-websocket-');
}

const NO_AUTH: Record<string, unknown> = Object.freeze({});
const NO_HANDSHAKE: HandshakeInfo = Object.freeze({
  auth: NO_AUTH,
  headers: Object.freeze({}),
  query: Object.freeze({}),
  address: '',
});

/**
 * What authentication found, as a session keeps it (plain JSON): no `channels` claim is none, and
 * no `data` keeps `fallbackData` (a refresh keeps what the connection had).
 */
export function sessionIdentity(
  identity: SocketIdentity,
  fallbackData: Record<string, unknown> = {},
): SessionIdentity {
  return {
    userId: identity.userId,
    channels: identity.channels ?? [],
    data: identity.data ?? fallbackData,
    exp: identity.exp,
  };
}

/**
 * A hook's answer, reduced to what the contract allows. Hooks are plain JavaScript: a `channels`
 * string would otherwise be read as one pattern per character (and crash the join check's cache),
 * a non-numeric `exp` would close the socket at once. Anything unusable fails closed.
 */
function checkedIdentity(identity: unknown): SocketIdentity {
  if (!isPlainObject(identity)) throw new TokenError('invalid_token');
  const { userId, channels, data, exp } = identity;
  if (exp !== undefined && (typeof exp !== 'number' || !Number.isFinite(exp)))
    throw new TokenError('invalid_token');
  // Already expired: refuse now rather than accept and close the socket a moment later.
  if (exp !== undefined && exp * 1000 <= Date.now()) throw new TokenError('token_expired');
  return {
    userId:
      typeof userId === 'string'
        ? userId
        : typeof userId === 'number' && Number.isFinite(userId)
          ? String(userId)
          : undefined,
    channels: Array.isArray(channels)
      ? channels.filter((c): c is string => typeof c === 'string' && c.length > 0)
      : [],
    data: isPlainObject(data) ? data : {},
    exp,
  };
}

/** The `data.code` for a refused connection. */
export function refusalCode(err: unknown): string {
  if (err instanceof TokenError) return err.code;
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && /^[a-z_]{1,50}$/.test(code) ? code : 'unauthorized';
}
