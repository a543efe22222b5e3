import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import type { Config } from '../config/schema.js';
import { ConfigError } from '../config/load.js';

/** Why a socket token was refused: the `data.code` of the client's `connect_error`. */
export type TokenRefusal =
  | 'missing_token'
  | 'token_expired'
  | 'token_not_yet_valid'
  | 'invalid_signature'
  | 'algorithm_not_allowed'
  | 'invalid_token';

/** A token that failed verification, with the reason code. */
export class TokenError extends Error {
  constructor(readonly code: TokenRefusal) {
    super(code);
    this.name = 'TokenError';
  }
}

/** What a verified token says about the socket. */
export interface TokenClaims {
  userId: string | undefined;
  /** The `channels` claim: names and `*` prefix patterns. */
  channels: string[];
  /** The `exp` claim, seconds since epoch, if the token has one. */
  exp: number | undefined;
}

/** Verifies socket tokens with the configured key and algorithm allowlist. */
export class TokenVerifier {
  /** Allowed clock skew, seconds: a token is honoured until `exp` plus this. */
  readonly clockToleranceS: number;
  private readonly check: (token: string) => Promise<JWTPayload>;

  constructor(jwt: Config['jwt']) {
    this.clockToleranceS = jwt.clockToleranceS;
    const options = {
      algorithms: jwt.algorithms ?? ['HS256'],
      clockTolerance: jwt.clockToleranceS,
    };
    let key: Uint8Array | KeyObject;
    if (jwt.jwksFile && !jwt.secret && !jwt.publicKey) {
      const jwks = loadJwks(jwt.jwksFile);
      this.check = async (token) => (await jwtVerify(token, jwks, options)).payload;
      return;
    }
    if (jwt.secret) key = new TextEncoder().encode(jwt.secret);
    else if (jwt.publicKey) key = publicKeyFrom(jwt.publicKey);
    else throw new ConfigError('invalid setting PUSHCAST_JWT_SECRET (jwt): no JWT key configured');
    this.check = async (token) => (await jwtVerify(token, key, options)).payload;
  }

  /** Verifies a token; throws {@link TokenError} with the refusal code. */
  async verify(token: unknown): Promise<TokenClaims> {
    if (typeof token !== 'string' || token.length === 0) throw new TokenError('missing_token');
    let payload: JWTPayload;
    try {
      // jose refuses `alg: none` and any algorithm outside the list before checking anything else.
      payload = await this.check(token);
    } catch (err) {
      throw new TokenError(refusalOf(err));
    }
    return {
      userId: typeof payload.sub === 'string' ? payload.sub : undefined,
      channels: Array.isArray(payload.channels)
        ? payload.channels.filter((c): c is string => typeof c === 'string' && c.length > 0)
        : [],
      exp: typeof payload.exp === 'number' ? payload.exp : undefined,
    };
  }
}

function refusalOf(err: unknown): TokenRefusal {
  if (err instanceof joseErrors.JWTExpired) return 'token_expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed && err.claim === 'nbf')
    return 'token_not_yet_valid';
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'invalid_signature';
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'algorithm_not_allowed';
  return 'invalid_token';
}

function loadJwks(path: string): ReturnType<typeof createLocalJWKSet> {
  try {
    return createLocalJWKSet(
      JSON.parse(readFileSync(path, 'utf8')) as Parameters<typeof createLocalJWKSet>[0],
    );
  } catch (err) {
    throw new ConfigError(
      `invalid setting PUSHCAST_JWT_JWKS_FILE (jwt.jwksFile): cannot read a JWKS from ${path} (${(err as Error).message})`,
    );
  }
}

/**
 * A PEM public key. Environment files and Secrets often carry the PEM on one line with literal
 * `\n` escapes: those are turned back into newlines.
 */
function publicKeyFrom(pem: string): KeyObject {
  try {
    return createPublicKey(pem.includes('\\n') ? pem.replace(/\\n/g, '\n') : pem);
  } catch {
    throw new ConfigError(
      'invalid setting PUSHCAST_JWT_PUBLIC_KEY (jwt.publicKey): not a PEM public key (-----BEGIN PUBLIC KEY-----)',
    );
  }
}
