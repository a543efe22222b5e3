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

/** The built-in socket authentication: a JWT in `auth.token`. */
export function builtInSocketAuth(verifier: TokenVerifier): DefaultAuth['authenticateSocket'] {
  return async (handshake: HandshakeInfo): Promise<SocketIdentity> => {
    const claims = await verifier.verify(handshake.auth.token);
    return { userId: claims.userId, channels: claims.channels, exp: claims.exp };
  };
}

/** The built-in join rule: the channel is public, or the socket's `channels` claim covers it. */
export function builtInJoinAuth(publicChannels: readonly string[]): DefaultAuth['authorizeJoin'] {
  const publicPatterns = new ChannelPatterns(publicChannels);
  const cache = new WeakMap<readonly string[], ChannelPatterns>();
  return (socket: SocketContext, channel: string) => {
    if (publicPatterns.matches(channel)) return Promise.resolve(true);
    let own = cache.get(socket.channels);
    if (!own) {
      own = new ChannelPatterns(socket.channels);
      cache.set(socket.channels, own);
    }
    return Promise.resolve(own.matches(channel));
  };
}

/** Runs socket authentication through the hooks module or the built-in; throws on refusal. */
export async function authenticateSocket(
  handshake: HandshakeInfo,
  hooks: Hooks,
  defaults: DefaultAuth,
): Promise<SocketIdentity> {
  const identity = hooks.authenticateSocket
    ? await hooks.authenticateSocket(handshake, defaults)
    : await defaults.authenticateSocket(handshake);
  if (!identity || typeof identity !== 'object') throw new TokenError('invalid_token');
  return identity;
}

/** The `data.code` for a refused connection. */
export function refusalCode(err: unknown): string {
  if (err instanceof TokenError) return err.code;
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && /^[a-z_]{1,50}$/.test(code) ? code : 'unauthorized';
}
