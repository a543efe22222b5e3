import { createHmac, createPublicKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import {
  UnsecuredJWT,
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

  /**
   * `direct: false` verifies every HMAC token through jose's WebCrypto path only: the reference
   * the direct path is compared with in test/unit/jwt-direct.test.ts.
   */
  constructor(jwt: VerifierSettings, { direct = true }: { direct?: boolean } = {}) {
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
      const fast = direct ? hmacVerifier(jwt.secret, options) : () => undefined;
      this.check = async (token) => fast(token) ?? (await jwtVerify(token, keys, options)).payload;
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

const HMAC_DIGESTS: Record<string, string> = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' };
/** Header fields the direct path knows; a token with any other (`crit`, `b64`, ...) goes to jose. */
const PLAIN_HEADER = new Set(['alg', 'typ', 'kid']);
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const UTF8 = new TextDecoder('utf-8', { fatal: true });
/** `{"alg":"none"}`, base64url: the header under which jose checks claims of a verified payload. */
const CLAIMS_HEADER = Buffer.from('{"alg":"none"}').toString('base64url');

/**
 * The common HMAC token, verified without WebCrypto: the signature with `node:crypto` (a few
 * microseconds; `crypto.subtle.verify` costs about 80 on the connect path, BENCHMARKS.md), the
 * claims by jose itself (`UnsecuredJWT.decode` runs the same claims check as `jwtVerify`, with the
 * same options and errors). Returns undefined for anything unusual (a header field other than
 * alg/typ/kid, an algorithm outside the allowlist, a malformed segment): jose's full path then
 * gives its own verdict, so both paths refuse the same tokens with the same codes
 * (test/unit/jwt-direct.test.ts compares them). Every token is verified: nothing is cached but
 * the secret's bytes.
 */
function hmacVerifier(
  secret: string,
  options: JWTVerifyOptions,
): (token: string) => JWTPayload | undefined {
  const key = Buffer.from(secret, 'utf8');
  const allowed = new Set(options.algorithms);
  return (token) => {
    const first = token.indexOf('.');
    const second = token.indexOf('.', first + 1);
    if (first <= 0 || second <= first + 1 || token.indexOf('.', second + 1) !== -1)
      return undefined;
    const header = token.slice(0, first);
    const payload = token.slice(first + 1, second);
    const signature = token.slice(second + 1);
    // Segments jose decodes differently from Buffer are left to it: a length of 4n + 1 (Buffer
    // drops the last character, jose refuses it) or a character outside base64url.
    if (![header, payload, signature].every((x) => BASE64URL.test(x) && x.length % 4 !== 1))
      return undefined;
    let alg: unknown;
    try {
      // Fatal: a header that is not UTF-8 goes to jose (Buffer would replace the bad bytes).
      const fields = JSON.parse(UTF8.decode(Buffer.from(header, 'base64url'))) as unknown;
      if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) return undefined;
      if (!Object.keys(fields).every((k) => PLAIN_HEADER.has(k))) return undefined;
      alg = (fields as { alg?: unknown }).alg;
    } catch {
      return undefined;
    }
    const digest = typeof alg === 'string' && allowed.has(alg) ? HMAC_DIGESTS[alg] : undefined;
    if (digest === undefined) return undefined;
    const expected = createHmac(digest, key).update(`${header}.${payload}`).digest();
    // A signature of another length than this algorithm's is jose's to refuse (with its code).
    if (signature.length !== Math.ceil((expected.length * 4) / 3)) return undefined;
    if (!timingSafeEqual(Buffer.from(signature, 'base64url'), expected))
      throw new joseErrors.JWSSignatureVerificationFailed();
    return UnsecuredJWT.decode(`${CLAIMS_HEADER}.${payload}.`, options).payload;
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
