import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { io, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
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
async function refusal(
  url: string,
  auth: Record<string, unknown>,
  transports: string[] = ['websocket'],
): Promise<Refusal> {
  return connectClient(url, auth, { transports }).then(
    (client) => {
      client.close();
      throw new Error('the socket connected but should have been refused');
    },
    (err: unknown) => err as Refusal,
  );
}

const nowS = (): number => Math.floor(Date.now() / 1000);
const b64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

/** Signs a token with a private key (RS/ES) and optional key id. */
function signWith(
  key: KeyObject,
  alg: string,
  claims: Record<string, unknown>,
  kid?: string,
): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg, ...(kid ? { kid } : {}) })
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(key);
}

/** Resolves with the first `event` on the socket, or rejects after `ms`. */
function next<T>(socket: Socket, event: string, ms = 6000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "${event}" within ${ms} ms`)), ms);
    socket.once(event, (value: T) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}

describe('socket connect auth (HS256 node)', () => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startNode();
  });
  afterAll(async () => {
    await node?.stop();
  });

  it('connects with a valid HS256 token and serves the channels of its claim', async () => {
    const client = await connectClient(node.url, {
      token: await token({ sub: 'u1', channels: ['user:1'] }),
    });
    try {
      expect(client.socket.connected).toBe(true);
      expect(await client.join('user:1')).toMatchObject({ ok: true, channel: 'user:1' });
      expect(await client.join('user:2')).toEqual({ ok: false, error: 'forbidden' });
    } finally {
      client.close();
    }
  });

  it('works over HTTP long-polling: connect, join, receive a push', async () => {
    const client = await connectClient(
      node.url,
      { token: await token({ sub: 'u1', channels: ['poll:1'] }) },
      { transports: ['polling'] },
    );
    try {
      expect(client.socket.io.engine.transport.name).toBe('polling');
      expect(await client.join('poll:1')).toMatchObject({ ok: true, channel: 'poll:1' });
      const res = await postJson(`${node.url}/api/push`, {
        channel: 'poll:1',
        event: 'hello',
        data: { over: 'polling' },
      });
      expect(res.status).toBe(200);
      const [msg] = await client.waitFor(1);
      expect(msg).toMatchObject({ channel: 'poll:1', event: 'hello', data: { over: 'polling' } });
      expect(msg!.id).toBe(res.body.id);
    } finally {
      client.close();
    }
  });

  it('refuses over long-polling with the same connect_error', async () => {
    const err = await refusal(node.url, { token: 'garbage' }, ['polling']);
    expect(err.message).toBe('unauthorized');
    expect(err.data).toEqual({ code: 'invalid_token' });
  });

  const refusals: Array<[string, () => Promise<Record<string, unknown>>, string]> = [
    ['no auth at all', () => Promise.resolve({}), 'missing_token'],
    ['an empty token', () => Promise.resolve({ token: '' }), 'missing_token'],
    ['a token that is not a string', () => Promise.resolve({ token: 12345 }), 'missing_token'],
    ['a garbage string', () => Promise.resolve({ token: 'not-a-jwt' }), 'invalid_token'],
    ['three garbage segments', () => Promise.resolve({ token: 'a.b.c' }), 'invalid_token'],
    [
      'alg: none (unsigned)',
      () =>
        Promise.resolve({
          token: `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ sub: 'u1', channels: ['*'], exp: nowS() + 3600 })}.`,
        }),
      'algorithm_not_allowed',
    ],
    [
      'alg: none with the signature of a valid token kept',
      async () => {
        const valid = await token({ sub: 'u1' });
        const sig = valid.split('.')[2]!;
        return {
          token: `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ sub: 'u1', channels: ['*'] })}.${sig}`,
        };
      },
      'algorithm_not_allowed',
    ],
    [
      'a bad signature (another secret)',
      async () => ({
        token: await token({ sub: 'u1' }, { secret: 'another-secret-another-secret-0123456789' }),
      }),
      'invalid_signature',
    ],
    [
      'a tampered payload (channels widened, signature kept)',
      async () => {
        const [header, , sig] = (await token({ sub: 'u1', channels: ['user:1'] })).split('.');
        const payload = b64url({ sub: 'u1', channels: ['*'], exp: nowS() + 3600 });
        return { token: `${header}.${payload}.${sig}` };
      },
      'invalid_signature',
    ],
    [
      'an expired token',
      async () => ({ token: await token({ sub: 'u1' }, { exp: nowS() - 10 }) }),
      'token_expired',
    ],
    [
      'a token not yet valid (nbf in the future)',
      async () => ({ token: await token({ sub: 'u1' }, { nbf: nowS() + 600 }) }),
      'token_not_yet_valid',
    ],
    [
      'HS384 when only HS256 is allowed',
      async () => ({ token: await token({ sub: 'u1' }, { alg: 'HS384' }) }),
      'algorithm_not_allowed',
    ],
    [
      'an RS256 token',
      async () => {
        const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
        return { token: await signWith(privateKey, 'RS256', { sub: 'u1' }) };
      },
      'algorithm_not_allowed',
    ],
  ];

  it.each(refusals)('refuses %s', async (_name, auth, code) => {
    const err = await refusal(node.url, await auth());
    expect(err.message).toBe('unauthorized');
    expect(err.data).toEqual({ code });
  });

  it('keeps serving valid sockets after a burst of refusals', async () => {
    const refused = await Promise.all(
      Array.from({ length: 20 }, () => refusal(node.url, { token: 'x.y.z' })),
    );
    expect(new Set(refused.map((e) => e.message))).toEqual(new Set(['unauthorized']));
    const client = await connectClient(node.url, { token: await token({ sub: 'u1' }) });
    client.close();
  });
});

describe('socket connect auth with a PEM public key (RS256)', () => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  let node: TestNode;
  beforeAll(async () => {
    node = await startNode({ jwt: { publicKey: pem } });
  });
  afterAll(async () => {
    await node?.stop();
  });

  it('accepts an RS256 token signed by the private key', async () => {
    const client = await connectClient(node.url, {
      token: await signWith(privateKey, 'RS256', { sub: 'u1', channels: ['rs:1'] }),
    });
    try {
      expect(await client.join('rs:1')).toMatchObject({ ok: true, channel: 'rs:1' });
    } finally {
      client.close();
    }
  });

  it('refuses an HS256 token signed with the PEM text as the secret (key confusion)', async () => {
    const forged = await token({ sub: 'u1', channels: ['*'] }, { secret: pem });
    const err = await refusal(node.url, { token: forged });
    expect(err.message).toBe('unauthorized');
    expect(err.data).toEqual({ code: 'algorithm_not_allowed' });
  });

  it('refuses the test HS256 secret and an RS256 token of another key pair', async () => {
    expect((await refusal(node.url, { token: await token({ sub: 'u1' }) })).data).toEqual({
      code: 'algorithm_not_allowed',
    });
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const err = await refusal(node.url, { token: await signWith(other, 'RS256', { sub: 'u1' }) });
    expect(err.data).toEqual({ code: 'invalid_signature' });
  });

  it('will not start with a public key and HS* algorithms (no key confusion by configuration)', async () => {
    await expect(
      startNode({ jwt: { publicKey: pem, algorithms: ['RS256', 'HS256'] } }),
    ).rejects.toThrow(/HS\* algorithms need/);
  });
});

describe('socket connect auth with a JWKS file (ES256)', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const dir = mkdtempSync(join(tmpdir(), 'pushcast-jwks-'));
  let node: TestNode;
  beforeAll(async () => {
    const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'k1', alg: 'ES256', use: 'sig' };
    const jwksFile = join(dir, 'jwks.json');
    writeFileSync(jwksFile, JSON.stringify({ keys: [jwk] }));
    node = await startNode({ jwt: { jwksFile } });
  });
  afterAll(async () => {
    await node?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('accepts an ES256 token with the matching kid', async () => {
    const client = await connectClient(node.url, {
      token: await signWith(privateKey, 'ES256', { sub: 'u1', channels: ['es:*'] }, 'k1'),
    });
    try {
      expect(await client.join('es:1')).toMatchObject({ ok: true, channel: 'es:1' });
    } finally {
      client.close();
    }
  });

  it('refuses an unknown kid, a foreign key under the known kid, and HS256', async () => {
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const unknownKid = await refusal(node.url, {
      token: await signWith(privateKey, 'ES256', { sub: 'u1' }, 'k2'),
    });
    expect(unknownKid.message).toBe('unauthorized');
    expect(unknownKid.data).toEqual({ code: 'invalid_token' });
    const foreign = await refusal(node.url, {
      token: await signWith(other, 'ES256', { sub: 'u1' }, 'k1'),
    });
    expect(foreign.data).toEqual({ code: 'invalid_signature' });
    const hs = await refusal(node.url, { token: await token({ sub: 'u1' }) });
    expect(hs.data).toEqual({ code: 'algorithm_not_allowed' });
  });
});

describe('token expiry and refresh', () => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startNode();
  });
  afterAll(async () => {
    await node?.stop();
  });

  it('closes the socket with token_expired when the token expires', async () => {
    const exp = nowS() + 2;
    const client = await connectClient(node.url, { token: await token({ sub: 'u1' }, { exp }) });
    try {
      const error = next<{ code: string }>(client.socket, 'error');
      const disconnected = next<string>(client.socket, 'disconnect');
      expect(await error).toMatchObject({ code: 'token_expired' });
      expect(Date.now()).toBeGreaterThanOrEqual(exp * 1000);
      expect(await disconnected).toBe('io server disconnect');
    } finally {
      client.close();
    }
  });

  it('keeps the socket past the old expiry after a refresh, with the fresh claims', async () => {
    const exp = nowS() + 2;
    const client = await connectClient(node.url, {
      token: await token({ sub: 'u1', channels: ['a'] }, { exp }),
    });
    try {
      let expired = false;
      client.socket.on('error', () => (expired = true));
      expect(await client.join('b')).toEqual({ ok: false, error: 'forbidden' });
      const fresh = await token({ sub: 'u1', channels: ['a', 'b'] });
      expect(await client.emit('refresh', { token: fresh })).toEqual({ ok: true });
      expect(await client.join('b')).toMatchObject({ ok: true, channel: 'b' });
      // Nothing to wait on: "nothing happens" can only be observed by letting the old expiry pass.
      await new Promise((r) => setTimeout(r, exp * 1000 - Date.now() + 1200));
      expect(expired).toBe(false);
      expect(client.socket.connected).toBe(true);
      expect(await client.join('a')).toMatchObject({ ok: true, channel: 'a' });
    } finally {
      client.close();
    }
  });

  it('answers unauthorized to bad refreshes, and they do not extend the session', async () => {
    const exp = nowS() + 2;
    const client = await connectClient(node.url, { token: await token({ sub: 'u1' }, { exp }) });
    try {
      const error = next<{ code: string }>(client.socket, 'error');
      const unauthorized = { ok: false, error: 'unauthorized' };
      expect(await client.emit('refresh', { token: 'garbage' })).toEqual(unauthorized);
      const otherSecret = 'another-secret-another-secret-0123456789';
      expect(
        await client.emit('refresh', {
          token: await token({ sub: 'u1' }, { secret: otherSecret }),
        }),
      ).toEqual(unauthorized);
      expect(
        await client.emit('refresh', { token: await token({ sub: 'u1' }, { exp: nowS() - 5 }) }),
      ).toEqual(unauthorized);
      expect(await client.emit('refresh', { token: await token({ sub: 'u2' }) })).toEqual(
        unauthorized,
      );
      expect(await client.emit('refresh', { token: await token({}) })).toEqual(unauthorized);
      for (const bad of [undefined, null, 'tok', {}, { token: 42 }]) {
        const answer = await client.emit('refresh', bad);
        expect(answer.ok).toBe(false);
        expect(['invalid_request', 'unauthorized']).toContain(answer.error);
      }
      expect(await error).toMatchObject({ code: 'token_expired' });
    } finally {
      client.close();
    }
  });

  it('answers refresh without a usable token with unauthorized', async () => {
    const c = await connectClient(node.url, { token: await token({ sub: 'u' }) });
    try {
      for (const payload of [undefined, {}, { token: '' }, { token: 42 }, 'x'])
        expect(await c.emit('refresh', payload)).toEqual({ ok: false, error: 'unauthorized' });
    } finally {
      c.close();
    }
  });

  it('honours jwt.clockToleranceS for the connection lifetime as well as the handshake', async () => {
    const tolerant = await startNode({ jwt: { secret: JWT_SECRET, clockToleranceS: 30 } });
    try {
      const client = await connectClient(tolerant.url, {
        token: await token({ sub: 'u1', channels: ['t'] }, { exp: nowS() - 2 }),
      });
      try {
        let expired = false;
        client.socket.on('error', () => (expired = true));
        // Accepted within the tolerance, so it must not be closed as expired right away: give a
        // wrongly armed expiry timer (it would fire at once) time to act, then look.
        await new Promise((r) => setTimeout(r, 300));
        expect(await client.join('t')).toMatchObject({ ok: true, channel: 't' });
        expect(expired).toBe(false);
        expect(client.socket.connected).toBe(true);
      } finally {
        client.close();
      }
    } finally {
      await tolerant.stop();
    }
  });
});

describe('socket connect origin check (corsOrigins)', () => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startNode({ corsOrigins: ['http://app.example'] });
  });
  afterAll(async () => node?.stop());

  it('enforces the origin list on WebSocket connections too', async () => {
    const jwt = await token({ sub: 'u' });
    const attempt = (origin?: string) =>
      new Promise<string>((resolve) => {
        const s = io(node.url, {
          auth: { token: jwt },
          transports: ['websocket'],
          reconnection: false,
          forceNew: true,
          ...(origin ? { extraHeaders: { origin } } : {}),
        });
        s.once('connect', () => {
          s.close();
          resolve('connected');
        });
        s.once('connect_error', () => {
          s.close();
          resolve('refused');
        });
      });
    expect(await attempt('http://evil.example')).toBe('refused');
    expect(await attempt('http://app.example')).toBe('connected');
    expect(await attempt()).toBe('connected');
  });
});
