import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT } from 'jose';
import { io } from 'socket.io-client';
import { startRedis, type RedisFixture } from '../support/redis.js';
import {
  API_KEY,
  connectClient,
  postJson,
  startNode,
  token,
  type TestNode,
} from '../support/nodes.js';
import { TokenVerifier } from '../../src/auth/jwt.js';
import { ConfigError } from '../../src/config/load.js';
import { useRedisCluster } from '../support/cluster.js';

describe('cluster APIs while Redis is away', () => {
  const cluster = useRedisCluster();
  let redis: RedisFixture;
  let node: TestNode;
  beforeAll(() => {
    ({ redis, node } = cluster);
  });

  it('answer 503 unavailable with Retry-After, and the node keeps serving', async () => {
    await redis.kill();
    // Wait until the node has noticed.
    for (let i = 0; i < 50 && (await fetch(`${node.url}/readyz`)).status === 200; i++)
      await new Promise((r) => setTimeout(r, 50));
    for (const path of [
      '/api/channels',
      '/api/channels/a',
      '/api/channels/a/presence',
      '/api/stats',
    ]) {
      const res = await fetch(`${node.url}${path}`, {
        headers: { authorization: `Bearer ${API_KEY}` },
      });
      expect(res.status, path).toBe(503);
      expect(res.headers.get('retry-after'), path).toBe('1');
      expect(((await res.json()) as { code: string }).code, path).toBe('unavailable');
    }
    expect((await fetch(`${node.url}/healthz`)).status).toBe(200);
    await redis.restart();
    for (let i = 0; i < 100 && (await fetch(`${node.url}/readyz`)).status !== 200; i++)
      await new Promise((r) => setTimeout(r, 100));
    const back = await fetch(`${node.url}/api/channels/a`, {
      headers: { authorization: `Bearer ${API_KEY}` },
    });
    expect(back.status).toBe(200);
  });
});

describe('history size is the same contract in memory and in Redis', () => {
  let redis: RedisFixture;
  const nodes: TestNode[] = [];
  beforeAll(async () => {
    redis = await startRedis();
    nodes.push(
      await startNode({ history: { size: 3 } }),
      await startNode({ redisUrl: redis.url, history: { size: 3 } }),
    );
  });
  afterAll(async () => {
    await Promise.allSettled(nodes.map((n) => n.stop()));
    await redis?.stop();
  });

  for (const [i, name] of ['memory', 'redis'].entries()) {
    it(`${name}: keeps the last 3 messages; a since before them does not recover`, async () => {
      const node = nodes[i]!;
      const ids: string[] = [];
      for (let n = 0; n < 6; n++)
        ids.push(
          (await postJson(`${node.url}/api/push`, { channel: 'size:a', event: 'e', data: n })).body
            .id as string,
        );
      const res = await fetch(`${node.url}/api/channels/size:a/history?limit=100`, {
        headers: { authorization: `Bearer ${API_KEY}` },
      });
      const page = (await res.json()) as {
        messages: Array<{ id: string; offset: string }>;
        offset: string;
      };
      expect(page.messages.map((m) => m.id)).toEqual(ids.slice(3));
      const epoch = page.offset.split(':')[0]!;
      const c = await connectClient(node.url, {
        token: await token({ sub: 'u', channels: ['size:a'] }),
      });
      try {
        // Offsets 1..6 exist; history holds 4..6: since 3 recovers exactly those, since 2 cannot.
        expect(await c.join('size:a', { since: `${epoch}:3` })).toMatchObject({
          recovered: true,
          missed: 3,
        });
        await c.emit('leave', { channel: 'size:a' });
        expect(await c.join('size:a', { since: `${epoch}:2` })).toMatchObject({ recovered: false });
      } finally {
        c.close();
      }
    });
  }
});

describe('edge cases of the edges', () => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startNode({ corsOrigins: ['http://app.example'] });
  });
  afterAll(async () => node?.stop());

  it('answers 400 invalid_json to a JSON request without a body', async () => {
    const res = await fetch(`${node.url}/api/push`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { code: string }).code).toBe('invalid_json');
  });

  it('names the channel-count limit it enforces', async () => {
    const channel = [...Array(101).keys()].map((i) => `c:${i}`);
    const res = await postJson(`${node.url}/api/push`, { channel, event: 'e', data: 1 });
    expect(res.status).toBe(422);
    expect(res.body).toMatchObject({
      code: 'invalid_push',
      details: { field: 'channel', limit: 100 },
    });
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
