import { createPublicKey, type KeyObject } from 'node:crypto';
import {
  createLocalJWKSet,
  errors as joseErrors,
  jwtVerify,
  type JWSHeaderParameters,
  type JWTPayload,
  type JWTVerifyOptions,
} from 'jose';
import type { Config } from '../config/schema.js';
import { ConfigError, checkJwtKeys, readJwksFile } from '../config/load.js';
import type { TokenRefusal } from '../errors.js';

export type { TokenRefusal };

/** A token that failed verification, with the reason code. */
export class TokenError extends Error {
  constructor(readonly code: TokenRefusal) {
    super(code);
    this.name = 'TokenError';
  }
}

/** What a verified token says about the socket. */
export interface TokenClaims {
  /** The `sub` claim: always present (a token without one is refused). */
  userId: string;
  /** The `channels` claim: names and `*` prefix patterns. */
  channels: string[];
  /** The `exp` claim, seconds since epoch; absent only with `jwt.allowNoExp`. */
  exp: number | undefined;
}

/** The JWT settings the verifier uses (`allowNoExp` defaults to false). */
export type VerifierSettings = Omit<Config['jwt'], 'allowNoExp'> & {
  allowNoExp?: boolean | undefined;
};

/**
 * Verifies socket tokens with the configured key and algorithm allowlist. Beyond the signature:
 * `exp` is required (unless `allowNoExp`), `sub` is required, and `iss`/`aud` must match the
 * configured issuer/audience when those are set.
 */
export class TokenVerifier {
  /** Allowed clock skew, seconds: a token is honoured until `exp` plus this. */
  readonly clockToleranceS: number;
  private readonly check: (token: string) => Promise<JWTPayload>;

  constructor(jwt: VerifierSettings) {
    this.clockToleranceS = jwt.clockToleranceS;
    checkJwtKeys(jwt);
    const options: JWTVerifyOptions = {
      algorithms: jwt.algorithms ?? ['HS256'],
      clockTolerance: jwt.clockToleranceS,
      requiredClaims: jwt.allowNoExp ? [] : ['exp'],
      ...(jwt.issuer !== undefined ? { issuer: jwt.issuer } : {}),
      ...(jwt.audience !== undefined ? { audience: jwt.audience } : {}),
    };
    if (jwt.jwksFile !== undefined) {
      const jwks = loadJwks(jwt.jwksFile);
      this.check = async (token) => (await jwtVerify(token, jwks, options)).payload;
      return;
    }
    if (jwt.secret) {
      const keys = hmacKeys(jwt.secret);
      this.check = async (token) => (await jwtVerify(token, keys, options)).payload;
    } else if (jwt.publicKey) {
      // jose keeps the CryptoKey it derives from a KeyObject (per algorithm): imported once.
      const key = publicKeyFrom(jwt.publicKey);
      this.check = async (token) => (await jwtVerify(token, key, options)).payload;
    } else
      throw new ConfigError('invalid setting PUSHCAST_JWT_SECRET (jwt): no JWT key configured');
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
    // Every socket belongs to a user: presence, and refresh (same `sub` only), rely on it.
    if (typeof payload.sub !== 'string' || payload.sub.length === 0)
      throw new TokenError('missing_sub');
    return {
      userId: payload.sub,
      channels: Array.isArray(payload.channels)
        ? payload.channels.filter((c): c is string => typeof c === 'string' && c.length > 0)
        : [],
      exp: typeof payload.exp === 'number' ? payload.exp : undefined,
    };
  }
}

function refusalOf(err: unknown): TokenRefusal {
  if (err instanceof joseErrors.JWTExpired) return 'token_expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    // Missing or different: jose adds `iss`/`aud` to the required claims when they are checked.
    if (err.claim === 'nbf') return 'token_not_yet_valid';
    if (err.claim === 'iss') return 'invalid_issuer';
    if (err.claim === 'aud') return 'invalid_audience';
    if (err.claim === 'exp' && err.reason === 'missing') return 'missing_exp';
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'invalid_signature';
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'algorithm_not_allowed';
  return 'invalid_token';
}

const HMAC_HASHES: Record<string, string> = {
  HS256: 'SHA-256',
  HS384: 'SHA-384',
  HS512: 'SHA-512',
};

/**
 * The secret as an HMAC key per algorithm, imported once: given the raw bytes, jose imports them
 * into WebCrypto again on every verification (measured: the largest share of a connect's CPU).
 * The key is cached, never a verdict: every token is still verified in full. The algorithm
 * allowlist is checked by jose before it asks for a key.
 */
function hmacKeys(
  secret: string,
): (header: JWSHeaderParameters) => Promise<CryptoKey | Uint8Array> {
  const raw = new TextEncoder().encode(secret);
  const imported = new Map<string, Promise<CryptoKey>>();
  return (header) => {
    const hash = header.alg === undefined ? undefined : HMAC_HASHES[header.alg];
    // Not an HMAC algorithm: jose refuses the raw secret with its own error.
    if (hash === undefined) return Promise.resolve(raw);
    let key = imported.get(hash);
    if (!key) {
      key = crypto.subtle.importKey('raw', raw, { name: 'HMAC', hash }, false, ['verify']);
      imported.set(hash, key);
    }
    return key;
  };
}

/** The key set of the JWKS file; a missing or bad file throws {@link ConfigError} (start fails). */
function loadJwks(path: string): ReturnType<typeof createLocalJWKSet> {
  const jwks = readJwksFile(path);
  try {
    return createLocalJWKSet(jwks);
  } catch {
    throw new ConfigError(
      `invalid setting PUSHCAST_JWT_JWKS_FILE (jwt.jwksFile): ${path} is not a usable JWKS`,
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
