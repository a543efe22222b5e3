import express from 'express';
import fc from 'fast-check';
import helmet from 'helmet';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import { SECURITY_HEADERS } from '../../src/http/app.js';
import { subscriber, until } from '../support/assertions.js';
import { useRedisCluster } from '../support/cluster.js';
import { API_KEY, postJson, startNode, type TestClient, type TestNode } from '../support/nodes.js';

// What an attacker holding a channel-limited API key tries: every route that names a channel,
// every route that lists channels, the cluster stats and the admin stream. The keys are
// config-file keys, checked by the built-in keyring (the path a real deployment takes).

const KEYS = {
  /** Full access: no channel limit, no scopes named (all of them). */
  full: API_KEY,
  /** Limited to invoice channels, no scopes named: push and read, never admin. */
  invoices: 'invoices-key-0123456789abcdef',
  /** Limited, and names admin itself. */
  invoicesAdmin: 'invoices-admin-key-0123456789abcdef',
  /** Limited, read only. */
  invoicesRead: 'invoices-read-key-0123456789abcdef',
};

const apiKeys: NonNullable<ConfigInput['apiKeys']> = [
  { key: KEYS.full, id: 'full' },
  { key: KEYS.invoices, id: 'invoices', channels: ['invoice:*'] },
  {
    key: KEYS.invoicesAdmin,
    id: 'invoices-admin',
    channels: ['invoice:*'],
    scopes: ['read', 'admin'],
  },
  { key: KEYS.invoicesRead, id: 'invoices-read', channels: ['invoice:*'], scopes: ['read'] },
];

async function get(
  url: string,
  key: string,
): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const controller = new AbortController();
  const res = await fetch(url, {
    headers: { authorization: `Bearer ${key}` },
    signal: controller.signal,
  });
  // The admin watch is an endless event stream: its status and first event are the answer.
  if (res.headers.get('content-type')?.startsWith('text/event-stream')) {
    const reader = res.body!.getReader();
    const first = await reader.read();
    controller.abort();
    const text = new TextDecoder().decode(first.value);
    return { status: res.status, body: { stream: text }, headers: res.headers };
  }
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : {}, headers: res.headers };
}

for (const mode of ['memory', 'redis'] as const) {
  describe(`channel-limited API keys (${mode})`, () => {
    let nodes: TestNode[];
    let clients: TestClient[] = [];
    const cluster = mode === 'redis' ? useRedisCluster({ nodes: 2, config: { apiKeys } }) : null;
    let single: TestNode | undefined;

    beforeAll(async () => {
      if (cluster) nodes = cluster.nodes;
      else nodes = [(single = await startNode({ apiKeys }))];
      const node = nodes[0]!;
      // Subscribers on both kinds of channel (and on the second node in Redis mode), and history.
      clients = [
        await subscriber(node, ['invoice:1', 'user:42']),
        await subscriber(nodes.at(-1)!, ['user:7']),
      ];
      for (const channel of ['invoice:1', 'user:42'])
        expect(
          (await postJson(`${node.url}/api/push`, { channel, event: 'e', data: 'secret' })).status,
        ).toBe(200);
    });
    afterAll(async () => {
      for (const c of clients) c.close();
      await single?.stop();
    });
    const url = (path: string): string => `${nodes[0]!.url}${path}`;

    it('refuses history, counts and presence of channels outside the key (403 forbidden)', async () => {
      for (const path of [
        '/api/channels/user:42/history',
        '/api/channels/user:42',
        '/api/channels/user:42/presence',
      ]) {
        const res = await get(url(path), KEYS.invoices);
        expect({ path, status: res.status, code: res.body.code }).toEqual({
          path,
          status: 403,
          code: 'forbidden',
        });
        expect(res.body.details).toEqual({ channel: 'user:42' });
        expect(JSON.stringify(res.body)).not.toContain('secret');
      }
    });

    it('serves the same routes for the key’s own channels', async () => {
      const history = await get(url('/api/channels/invoice:1/history'), KEYS.invoices);
      expect(history.status).toBe(200);
      expect(history.body.messages).toHaveLength(1);
      const count = await get(url('/api/channels/invoice:1'), KEYS.invoicesRead);
      expect(count.body).toEqual({ channel: 'invoice:1', subscribers: 1 });
      expect((await get(url('/api/channels/invoice:1/presence'), KEYS.invoices)).status).toBe(200);
    });

    it('lists only the channels the key may see, cluster-wide', async () => {
      const full = await get(url('/api/channels'), KEYS.full);
      expect(full.body.channels).toEqual([
        { channel: 'invoice:1', subscribers: 1 },
        { channel: 'user:42', subscribers: 1 },
        { channel: 'user:7', subscribers: 1 },
      ]);
      const limited = await get(url('/api/channels?prefix=u'), KEYS.invoices);
      expect(limited.body).toEqual({ channels: [] });
      const own = await get(url('/api/channels?limit=1'), KEYS.invoices);
      expect(own.body).toEqual({ channels: [{ channel: 'invoice:1', subscribers: 1 }] });
    });

    it('keeps the cluster-wide stats from channel-limited keys', async () => {
      const limited = await get(url('/api/stats'), KEYS.invoicesAdmin);
      expect({ status: limited.status, code: limited.body.code }).toEqual({
        status: 403,
        code: 'forbidden',
      });
      const full = await get(url('/api/stats'), KEYS.full);
      expect(full.status).toBe(200);
      expect((full.body.totals as { nodes: number }).nodes).toBe(nodes.length);
    });

    it('gives a channel-limited key without scopes no admin scope', async () => {
      for (const path of ['/api/admin/session', '/api/admin/watch?channel=invoice:1']) {
        const res = await get(url(path), KEYS.invoices);
        expect({ path, status: res.status, code: res.body.code }).toEqual({
          path,
          status: 403,
          code: 'forbidden',
        });
        expect(res.body.details).toEqual({ scope: 'admin' });
      }
      expect((await get(url('/api/admin/session'), KEYS.full)).body).toEqual({ keyId: 'full' });
    });

    it('lets an admin key limited to channels watch only those channels', async () => {
      const other = await get(url('/api/admin/watch?channel=user:42'), KEYS.invoicesAdmin);
      expect({ status: other.status, code: other.body.code }).toEqual({
        status: 403,
        code: 'forbidden',
      });
      const own = await get(url('/api/admin/watch?channel=invoice:1'), KEYS.invoicesAdmin);
      expect(own.status).toBe(200);
      expect(own.body.stream).toContain('event: ready');
    });

    it('refuses pushes outside the key, also slot by slot in a batch', async () => {
      const auth = { authorization: `Bearer ${KEYS.invoices}` };
      const single = await postJson(
        url('/api/push'),
        { channel: 'user:42', event: 'e', data: 1 },
        auth,
      );
      expect({ status: single.status, code: single.body.code }).toEqual({
        status: 403,
        code: 'forbidden',
      });
      const batch = await postJson(
        url('/api/push/batch'),
        {
          pushes: [
            { channel: 'invoice:2', event: 'e', data: 1 },
            { channel: ['invoice:2', 'user:42'], event: 'e', data: 1 },
          ],
        },
        auth,
      );
      const results = batch.body.results as Array<Record<string, unknown>>;
      expect(results[0]).toHaveProperty('id');
      expect(results[1]).toMatchObject({ code: 'forbidden' });
      const readOnly = await postJson(
        url('/api/push'),
        { channel: 'invoice:2', event: 'e', data: 1 },
        { authorization: `Bearer ${KEYS.invoicesRead}` },
      );
      expect(readOnly.status).toBe(403);
    });
  });
}

describe('security headers', () => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startNode();
  });
  afterAll(async () => {
    await node.stop();
  });

  it('sends the standard headers on every answer, errors included', async () => {
    const answers = [
      await fetch(`${node.url}/healthz`),
      await fetch(`${node.url}/metrics`),
      await fetch(`${node.url}/api/openapi.json`),
      await fetch(`${node.url}/api/stats`),
      await fetch(`${node.url}/api/nothing-here`, {
        headers: { authorization: `Bearer ${API_KEY}` },
      }),
    ];
    expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 401, 404]);
    for (const res of answers) {
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('x-frame-options')).toBe('SAMEORIGIN');
      expect(res.headers.get('referrer-policy')).toBe('no-referrer');
      expect(res.headers.get('content-security-policy')).toBe(
        "default-src 'none';frame-ancestors 'none'",
      );
      expect(res.headers.get('x-powered-by')).toBeNull();
    }
  });

  it('sends exactly the headers helmet sets per request, pushes included', async () => {
    // pushcast works helmet's headers out once at startup; helmet itself, mounted as usual,
    // sets them on every answer: the two must agree, header for header.
    const plain = express().use(helmet(SECURITY_HEADERS));
    plain.get('/', (_req, res) => void res.json({}));
    const server = plain.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    try {
      const port = (server.address() as AddressInfo).port;
      const own = new Set(['content-type', 'content-length', 'date', 'connection', 'keep-alive']);
      const helmetHeaders = Object.entries(
        headersOf((await fetch(`http://127.0.0.1:${port}/`)).headers),
      ).filter(([name]) => !own.has(name) && name !== 'x-powered-by' && name !== 'etag');
      expect(helmetHeaders.length).toBeGreaterThan(8);
      const push = await postJson(`${node.url}/api/push`, {
        channel: 'headers:1',
        event: 'e',
        data: {},
      });
      expect(push.status).toBe(200);
      for (const headers of [push.headers, (await fetch(`${node.url}/healthz`)).headers]) {
        const sent = headersOf(headers);
        for (const [name, value] of helmetHeaders) expect(sent[name], name).toBe(value);
      }
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('sends the admin page with a CSP that forbids framing', async () => {
    const res = await fetch(`${node.url}/admin`);
    expect(res.status).toBe(200);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("default-src 'self'");
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
  });
});

/** A fetch answer's headers as a plain object (lower-case names). */
function headersOf(headers: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  headers.forEach((value, name) => (out[name] = value));
  return out;
}

describe('property: a request succeeds exactly when the key’s scopes and patterns allow it', () => {
  const SCOPES = ['push', 'read', 'admin'] as const;
  const CHANNELS = ['invoice:1', 'invoice:2', 'user:42', 'user:7', 'org:7:a', 'team:7'];
  const PATTERNS = ['invoice:*', 'user:42', 'user:*', 'org:7:*', 'team:7', '*', 'nothing:*'];
  type Spec = { scopes?: Array<(typeof SCOPES)[number]>; channels?: string[] };
  type Route = {
    name: string;
    scope: 'push' | 'read' | 'admin' | 'control';
    cluster?: boolean;
    channel: boolean;
  };
  const ROUTES: Route[] = [
    { name: 'push', scope: 'push', channel: true },
    { name: 'batch', scope: 'push', channel: true },
    { name: 'history', scope: 'read', channel: true },
    { name: 'count', scope: 'read', channel: true },
    { name: 'presence', scope: 'read', channel: true },
    { name: 'list', scope: 'read', channel: false },
    { name: 'stats', scope: 'read', channel: false, cluster: true },
    { name: 'watch', scope: 'admin', channel: true },
    { name: 'session', scope: 'admin', channel: false },
    // The control API, on a user nobody is (the subscriber below stays): `admin` includes it.
    { name: 'unsubscribe', scope: 'control', channel: true },
    { name: 'disconnect', scope: 'control', channel: false, cluster: true },
  ];

  // Thirty keys drawn once (they are the node's settings); the property then draws requests.
  const specs: Spec[] = fc.sample(
    fc.record(
      {
        scopes: fc.subarray([...SCOPES]),
        channels: fc.subarray(PATTERNS, { minLength: 1, maxLength: 3 }),
      },
      { requiredKeys: [] },
    ),
    { numRuns: 30, seed: 20261130 },
  );
  const keyOf = (i: number): string =>
    `property-key-${String(i).padStart(2, '0')}-0123456789abcdef`;
  let node: TestNode;
  let client: TestClient;
  beforeAll(async () => {
    node = await startNode({
      apiKeys: specs.map((s, i) => ({ ...s, key: keyOf(i), id: `p${i}` })),
      limits: { pushesPerSecond: 100_000, pushBurst: 100_000 },
    });
    client = await subscriber(node, CHANNELS);
    await until(() => client.socket.connected, 1000, 'subscriber');
  });
  afterAll(async () => {
    client.close();
    await node.stop();
  });

  const covers = (patterns: string[] | undefined, channel: string): boolean =>
    !patterns ||
    patterns.some((p) => (p.endsWith('*') ? channel.startsWith(p.slice(0, -1)) : p === channel));

  it('holds for random keys x routes x channels', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: specs.length - 1 }),
        fc.constantFrom(...ROUTES),
        fc.constantFrom(...CHANNELS),
        async (k, route, channel) => {
          const spec = specs[k]!;
          const scopes: string[] = [
            ...(spec.scopes ?? (spec.channels ? ['push', 'read'] : SCOPES)),
          ];
          if (scopes.includes('admin')) scopes.push('control');
          const allowed =
            scopes.includes(route.scope) &&
            (!route.channel || covers(spec.channels, channel)) &&
            (!route.cluster || !spec.channels);
          const key = keyOf(k);
          const auth = { authorization: `Bearer ${key}` };
          const push = { channel, event: 'e', data: 1 };
          let status: number;
          switch (route.name) {
            case 'push':
              status = (await postJson(`${node.url}/api/push`, push, auth)).status;
              break;
            case 'batch': {
              const res = await postJson(`${node.url}/api/push/batch`, { pushes: [push] }, auth);
              // Scope refusals answer the request; channel refusals answer the slot.
              const slot = (res.body.results as Array<{ code?: string }> | undefined)?.[0];
              status = res.status === 200 && slot?.code === 'forbidden' ? 403 : res.status;
              break;
            }
            case 'unsubscribe':
              status = (
                await postJson(
                  `${node.url}/api/channels/${channel}/unsubscribe`,
                  { userId: 'nobody' },
                  auth,
                )
              ).status;
              break;
            case 'disconnect':
              status = (await postJson(`${node.url}/api/users/nobody/disconnect`, {}, auth)).status;
              break;
            case 'list': {
              const res = await get(`${node.url}/api/channels`, key);
              status = res.status;
              if (status === 200)
                for (const c of res.body.channels as Array<{ channel: string }>)
                  expect(covers(spec.channels, c.channel), c.channel).toBe(true);
              break;
            }
            default: {
              const path = {
                history: `/api/channels/${channel}/history`,
                count: `/api/channels/${channel}`,
                presence: `/api/channels/${channel}/presence`,
                stats: '/api/stats',
                watch: `/api/admin/watch?channel=${channel}`,
                session: '/api/admin/session',
              }[route.name]!;
              status = (await get(`${node.url}${path}`, key)).status;
            }
          }
          expect(status, `${route.name} ${channel} with ${JSON.stringify(spec)}`).toBe(
            allowed ? 200 : 403,
          );
        },
      ),
      { numRuns: 300, seed: 42 },
    );
  });
});
