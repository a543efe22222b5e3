import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenVerifier } from '../../src/auth/jwt.js';
import { ConfigError } from '../../src/config/load.js';
import { DEV_API_KEY, DEV_JWT_SECRET } from '../../src/config/development.js';
import { createPushServer } from '../../src/server.js';
import {
  API_KEY,
  JWT_SECRET,
  connectClient,
  postJson,
  startNode,
  token,
  type TestNode,
} from '../support/nodes.js';

/** The connect_error a refused client gets: `message: "unauthorized"`, `data: { code }`. */
type Refusal = Error & { data?: { code?: unknown } };

/** Connects and expects a refusal; fails the test if the socket connects. */
async function refusal(url: string, auth: Record<string, unknown>): Promise<Refusal> {
  return connectClient(url, auth).then(
    (client) => {
      client.close();
      throw new Error('the socket connected but should have been refused');
    },
    (err: unknown) => err as Refusal,
  );
}

/** Connects, joins `channel`, and closes: the token was accepted end to end. */
async function joins(url: string, jwt: string, channel: string): Promise<void> {
  const client = await connectClient(url, { token: jwt });
  try {
    expect(await client.join(channel)).toMatchObject({ ok: true, channel });
  } finally {
    client.close();
  }
}

/** The rejection of `promise` (fails the test if it resolves). */
async function rejectionOf(promise: Promise<unknown>): Promise<Error> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: unknown) => err as Error,
  );
}

const nowS = (): number => Math.floor(Date.now() / 1000);

describe('jwt.issuer and jwt.audience', () => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startNode({
      jwt: { secret: JWT_SECRET, issuer: 'https://auth.example.com/', audience: ['push', 'ws'] },
    });
  });
  afterAll(async () => node?.stop());

  const iss = 'https://auth.example.com/';

  it('accepts a token with the right issuer and one of the audiences', async () => {
    await joins(node.url, await token({ iss, aud: 'push', channels: ['a'] }), 'a');
    await joins(node.url, await token({ iss, aud: ['other', 'ws'], channels: ['a'] }), 'a');
  });

  it('refuses a wrong or missing issuer with invalid_issuer', async () => {
    for (const claims of [{ iss: 'https://evil.example.com/', aud: 'push' }, { aud: 'push' }]) {
      const err = await refusal(node.url, { token: await token({ ...claims, channels: ['a'] }) });
      expect(err.message).toBe('unauthorized');
      expect(err.data).toEqual({ code: 'invalid_issuer' });
    }
  });

  it('refuses a wrong or missing audience with invalid_audience', async () => {
    for (const claims of [{ iss, aud: 'billing' }, { iss, aud: ['billing', 'x'] }, { iss }]) {
      const err = await refusal(node.url, { token: await token({ ...claims, channels: ['a'] }) });
      expect(err.data).toEqual({ code: 'invalid_audience' });
    }
  });

  it('does not check iss or aud on a node without those settings', async () => {
    const plain = await startNode();
    try {
      await joins(plain.url, await token({ iss: 'anyone', aud: 'anything', channels: ['a'] }), 'a');
    } finally {
      await plain.stop();
    }
  });
});

describe('exp is required unless jwt.allowNoExp', () => {
  let strict: TestNode;
  let lenient: TestNode;
  beforeAll(async () => {
    strict = await startNode();
    lenient = await startNode({ jwt: { secret: JWT_SECRET, allowNoExp: true } });
  });
  afterAll(async () => {
    await strict?.stop();
    await lenient?.stop();
  });

  it('refuses a token without exp with missing_exp', async () => {
    const err = await refusal(strict.url, {
      token: await token({ sub: 'u1', channels: ['a'] }, { exp: null }),
    });
    expect(err.message).toBe('unauthorized');
    expect(err.data).toEqual({ code: 'missing_exp' });
  });

  it('accepts a token without exp with allowNoExp, and still refuses an expired one', async () => {
    await joins(lenient.url, await token({ sub: 'u1', channels: ['a'] }, { exp: null }), 'a');
    const err = await refusal(lenient.url, {
      token: await token({ sub: 'u1' }, { exp: nowS() - 10 }),
    });
    expect(err.data).toEqual({ code: 'token_expired' });
  });
});

describe('sub is required', () => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startNode();
  });
  afterAll(async () => node?.stop());

  it('refuses a token without sub, or with an empty or non-string one, with missing_sub', async () => {
    for (const claims of [{ sub: undefined }, { sub: '' }, { sub: 42 as unknown as string }]) {
      const err = await refusal(node.url, { token: await token({ ...claims, channels: ['a'] }) });
      expect(err.message).toBe('unauthorized');
      expect(err.data).toEqual({ code: 'missing_sub' });
    }
  });

  it('refuses a refresh for another sub, without sub, or without exp', async () => {
    const client = await connectClient(node.url, {
      token: await token({ sub: 'u1', channels: ['a'] }),
    });
    try {
      const unauthorized = { ok: false, error: 'unauthorized' };
      const other = await token({ sub: 'u2', channels: ['a', 'b'] });
      expect(await client.emit('refresh', { token: other })).toEqual(unauthorized);
      const subless = await token({ sub: undefined, channels: ['a', 'b'] });
      expect(await client.emit('refresh', { token: subless })).toEqual(unauthorized);
      const noExp = await token({ sub: 'u1', channels: ['a', 'b'] }, { exp: null });
      expect(await client.emit('refresh', { token: noExp })).toEqual(unauthorized);
      // None of them changed the session; a refresh for the same sub does.
      expect(await client.join('b')).toEqual({ ok: false, error: 'forbidden' });
      const same = await token({ sub: 'u1', channels: ['a', 'b'] });
      expect(await client.emit('refresh', { token: same })).toEqual({ ok: true });
      expect(await client.join('b')).toMatchObject({ ok: true, channel: 'b' });
    } finally {
      client.close();
    }
  });
});

describe('development secrets only for the zero-setting first run', () => {
  it('will not build a node with API keys and no JWT key (createPushServer throws ConfigError)', async () => {
    expect(() =>
      createPushServer({ env: 'test', port: 0, apiKeys: [{ key: API_KEY }], logLevel: 'silent' }),
    ).toThrow(ConfigError);
    const err = await rejectionOf(startNode({ jwt: {} }));
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toMatch(/^invalid setting PUSHCAST_JWT_SECRET \(jwt\): /);
    expect(err.message).toContain('PUSHCAST_JWT_PUBLIC_KEY');
    expect(err.message).toContain('PUSHCAST_JWT_JWKS_FILE');
  });

  it('will not build a node with a JWT key and no API key', async () => {
    const err = await rejectionOf(startNode({ apiKeys: [] }));
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toMatch(/^invalid setting PUSHCAST_API_KEYS \(apiKeys\): /);
  });

  it('a token signed with the development secret, and the development key, do not work on a node with real keys', async () => {
    const node = await startNode();
    try {
      const devToken = await token({ sub: 'u1', channels: ['*'] }, { secret: DEV_JWT_SECRET });
      expect((await refusal(node.url, { token: devToken })).data).toEqual({
        code: 'invalid_signature',
      });
      const push = { channel: 'a', event: 'e', data: 1 };
      const res = await postJson(`${node.url}/api/push`, push, {
        authorization: `Bearer ${DEV_API_KEY}`,
      });
      expect(res.status).toBe(401);
    } finally {
      await node.stop();
    }
  });
});

describe('JWKS file and key settings', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pushcast-jwt-options-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a missing JWKS file stops the start, naming the setting and the file', async () => {
    const jwksFile = join(dir, 'missing-jwks.json');
    const err = await rejectionOf(startNode({ jwt: { jwksFile } }));
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toBe(
      `invalid setting PUSHCAST_JWT_JWKS_FILE (jwt.jwksFile): no file at ${jwksFile}`,
    );
  });

  it('a JWKS file with a secret (or a public key) stops the start, naming the settings', async () => {
    const err = await rejectionOf(
      startNode({ jwt: { secret: JWT_SECRET, jwksFile: join(dir, 'whatever.json') } }),
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toBe(
      'invalid setting PUSHCAST_JWT_JWKS_FILE (jwt.jwksFile): set only one of PUSHCAST_JWT_SECRET, PUSHCAST_JWT_PUBLIC_KEY, PUSHCAST_JWT_JWKS_FILE',
    );
  });
});

describe('production refuses the example secrets', () => {
  it('refuses an API key or JWT secret from the examples, without echoing it', async () => {
    const exampleKey = 'replace-with-a-long-random-key-1';
    const keyErr = await rejectionOf(
      startNode({ env: 'production', apiKeys: [{ id: 'billing', key: exampleKey }] }),
    );
    expect(keyErr).toBeInstanceOf(ConfigError);
    expect(keyErr.message).toMatch(/^invalid setting apiKeys\.0\.key: .*not allowed in production/);
    expect(keyErr.message).not.toContain(exampleKey);

    const exampleSecret = 'replace-with-a-random-secret-of-at-least-32-characters';
    const secretErr = await rejectionOf(
      startNode({ env: 'production', jwt: { secret: exampleSecret } }),
    );
    expect(secretErr).toBeInstanceOf(ConfigError);
    expect(secretErr.message).toMatch(/^invalid setting PUSHCAST_JWT_SECRET \(jwt\.secret\): /);
    expect(secretErr.message).not.toContain(exampleSecret);

    // The same node with real secrets starts.
    const node = await startNode({ env: 'production' });
    await node.stop();
  });
});

describe('PEM public keys from environment files', () => {
  it('accepts a PEM written on one line with \\n escapes, and names the setting when it is not a key', async () => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const escaped = pem.trim().split('\n').join('\\n');
    const verifier = new TokenVerifier({
      publicKey: escaped,
      algorithms: ['RS256'],
      clockToleranceS: 0,
    });
    const jwt = await new SignJWT({ channels: ['a'] })
      .setProtectedHeader({ alg: 'RS256' })
      .setSubject('u')
      .setExpirationTime('1h')
      .sign(privateKey);
    expect(await verifier.verify(jwt)).toMatchObject({ userId: 'u', channels: ['a'] });
    expect(
      () =>
        new TokenVerifier({
          publicKey: '-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----',
          algorithms: ['RS256'],
          clockToleranceS: 0,
        }),
    ).toThrow(ConfigError);
    expect(
      () =>
        new TokenVerifier({
          publicKey: '-----BEGIN PUBLIC KEY-----\nnope',
          algorithms: ['RS256'],
          clockToleranceS: 0,
        }),
    ).toThrow(/PUSHCAST_JWT_PUBLIC_KEY/);
  });
});
