import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TokenError, TokenVerifier, type VerifierSettings } from '../../src/auth/jwt.js';

const SECRET = 'unit-test-secret-0123456789abcdef-0123456789abcdef';
const settings: VerifierSettings = {
  secret: SECRET,
  algorithms: ['HS256', 'HS384'],
  clockToleranceS: 30,
  issuer: 'https://issuer.example',
  audience: ['pushcast', 'other'],
};
const direct = new TokenVerifier(settings);
const reference = new TokenVerifier(settings, { direct: false });

const b64 = (value: string | Buffer): string => Buffer.from(value).toString('base64url');
const nowS = (): number => Math.floor(Date.now() / 1000);

/** What a verifier says about a token: the claims it returns, or the refusal code. */
async function verdict(verifier: TokenVerifier, token: string): Promise<unknown> {
  try {
    return { ok: await verifier.verify(token) };
  } catch (err) {
    if (err instanceof TokenError) return { refused: err.code };
    throw err;
  }
}

/** A token built from parts: header fields, claims, the signing secret and algorithm. */
interface Parts {
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
  /** `alg`: the digest of the header's algorithm (sha256 when it names none). */
  signWith: { secret: string; digest: 'alg' | 'sha256' | 'sha384' | 'sha512' };
  tamper:
    | 'none'
    | 'flip-signature'
    | 'flip-payload'
    | 'pad'
    | 'extra-segment'
    | 'bad-char'
    | 'signature+1'
    | 'signature+2'
    | 'signature+3'
    | 'header+1'
    | 'payload+1'
    | 'header-not-utf8';
}

function build(parts: Parts): string {
  // Segments of every length modulo 4 (base64url of 3n + 1 bytes is 4n + 2 characters, and so
  // on), and a header that is not UTF-8 (a byte 0xff inside a string value), still signed.
  const headerJson = JSON.stringify(parts.header);
  const head =
    parts.tamper === 'header-not-utf8'
      ? b64(
          Buffer.concat([
            Buffer.from(headerJson.slice(0, -1)),
            Buffer.from(',"x":"\xff"}', 'latin1'),
          ]),
        )
      : parts.tamper === 'header+1'
        ? `${b64(headerJson)}A`
        : b64(headerJson);
  const body =
    parts.tamper === 'payload+1'
      ? `${b64(JSON.stringify(parts.claims))}A`
      : b64(JSON.stringify(parts.claims));
  const digest =
    parts.signWith.digest !== 'alg'
      ? parts.signWith.digest
      : parts.header.alg === 'HS384'
        ? 'sha384'
        : parts.header.alg === 'HS512'
          ? 'sha512'
          : 'sha256';
  const sig = createHmac(digest, parts.signWith.secret)
    .update(`${head}.${body}`)
    .digest('base64url');
  const flip = (s: string, at: number): string =>
    s.slice(0, at) + (s[at] === 'A' ? 'B' : 'A') + s.slice(at + 1);
  switch (parts.tamper) {
    case 'none':
      return `${head}.${body}.${sig}`;
    case 'flip-signature':
      return `${head}.${body}.${flip(sig, 3)}`;
    case 'flip-payload':
      return `${head}.${flip(body, 5)}.${sig}`;
    case 'pad':
      return `${head}.${body}.${sig}=`;
    case 'extra-segment':
      return `${head}.${body}.${sig}.x`;
    case 'bad-char':
      return `${head}.${body}.${sig.slice(0, -1)}+`;
    case 'signature+1':
      return `${head}.${body}.${sig}A`;
    case 'signature+2':
      return `${head}.${body}.${sig}AA`;
    case 'signature+3':
      return `${head}.${body}.${sig}AAA`;
    case 'header+1':
    case 'payload+1':
    case 'header-not-utf8':
      return `${head}.${body}.${sig}`;
  }
}

const alg = fc.constantFrom<unknown>('HS256', 'HS384', 'HS384', 'HS512', 'none', 'RS256', 7);
// Mostly the header fields the direct path handles itself; sometimes ones it leaves to jose.
const header = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record(
      { alg, typ: fc.constantFrom('JWT', 'at+jwt'), kid: fc.string({ maxLength: 4 }) },
      { requiredKeys: ['alg'] },
    ),
  },
  {
    weight: 1,
    arbitrary: fc.record(
      {
        alg,
        typ: fc.constantFrom('JWT', 'at+jwt'),
        crit: fc.constant(['b64']),
        b64: fc.boolean(),
        x: fc.integer(),
      },
      { requiredKeys: ['alg'] },
    ),
  },
);
const timeOffset = fc.constantFrom(-3600, -40, -10, 10, 40, 3600);
const claims = fc.record(
  {
    sub: fc.constantFrom<unknown>('user-1', '', 5, null),
    exp: fc.oneof(
      timeOffset.map((d) => nowS() + d),
      fc.constantFrom<unknown>('soon', null),
    ),
    nbf: timeOffset.map((d) => nowS() + d),
    iat: timeOffset.map((d) => nowS() + d),
    iss: fc.constantFrom<unknown>('https://issuer.example', 'https://other.example', 1),
    aud: fc.constantFrom<unknown>('pushcast', 'nobody', ['x', 'other'], []),
    channels: fc.array(fc.constantFrom<unknown>('a', 'b:*', '', 3), { maxLength: 3 }),
  },
  { requiredKeys: [] },
);
const parts: fc.Arbitrary<Parts> = fc.record({
  header,
  claims,
  signWith: fc.record({
    // Mostly the right key and the header's own algorithm: the cases that reach the signature.
    secret: fc.constantFrom(SECRET, SECRET, SECRET, `${SECRET}x`),
    digest: fc.constantFrom('alg', 'alg', 'alg', 'sha256', 'sha384', 'sha512'),
  }),
  tamper: fc.constantFrom<Parts['tamper']>(
    'none',
    'none',
    'none',
    'flip-signature',
    'flip-payload',
    'pad',
    'extra-segment',
    'bad-char',
    'signature+1',
    'signature+2',
    'signature+3',
    'header+1',
    'payload+1',
    'header-not-utf8',
  ),
});

describe('HMAC tokens verified without WebCrypto', () => {
  it('give the same verdict as jose alone, for any header, claims, key and tampering', async () => {
    await fc.assert(
      fc.asyncProperty(parts, async (p) => {
        const token = build(p);
        expect(await verdict(direct, token)).toEqual(await verdict(reference, token));
      }),
      { numRuns: 3000 },
    );
  });

  it('accepts a good token and refuses the usual faults with their codes', async () => {
    const good: Parts = {
      header: { alg: 'HS256', typ: 'JWT' },
      claims: {
        sub: 'u1',
        exp: nowS() + 60,
        iss: 'https://issuer.example',
        aud: 'pushcast',
        channels: ['a'],
      },
      signWith: { secret: SECRET, digest: 'sha256' },
      tamper: 'none',
    };
    expect(await verdict(direct, build(good))).toEqual({
      ok: { userId: 'u1', channels: ['a'], exp: good.claims.exp },
    });
    const refusal = async (p: Partial<Parts>): Promise<unknown> =>
      verdict(direct, build({ ...good, ...p }));
    expect(await refusal({ signWith: { secret: 'wrong', digest: 'sha256' } })).toEqual({
      refused: 'invalid_signature',
    });
    expect(await refusal({ tamper: 'flip-signature' })).toEqual({ refused: 'invalid_signature' });
    expect(await refusal({ claims: { ...good.claims, exp: nowS() - 60 } })).toEqual({
      refused: 'token_expired',
    });
    expect(await refusal({ claims: { ...good.claims, exp: undefined } })).toEqual({
      refused: 'missing_exp',
    });
    expect(await refusal({ claims: { ...good.claims, iss: 'x' } })).toEqual({
      refused: 'invalid_issuer',
    });
    expect(await refusal({ claims: { ...good.claims, aud: 'x' } })).toEqual({
      refused: 'invalid_audience',
    });
    expect(await refusal({ claims: { ...good.claims, nbf: nowS() + 600 } })).toEqual({
      refused: 'token_not_yet_valid',
    });
    expect(await refusal({ claims: { ...good.claims, sub: undefined } })).toEqual({
      refused: 'missing_sub',
    });
    expect(
      await refusal({ header: { alg: 'HS512' }, signWith: { secret: SECRET, digest: 'sha512' } }),
    ).toEqual({ refused: 'algorithm_not_allowed' });
    expect(await refusal({ header: { alg: 'none' } })).toEqual({
      refused: 'algorithm_not_allowed',
    });
  });
});
