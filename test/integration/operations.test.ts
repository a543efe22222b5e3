import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisFixture } from '../support/redis.js';
import { freePort } from '../support/ports.js';
import { spawnNode } from '../support/process.js';
import {
  API_KEY,
  JWT_SECRET,
  connectClient,
  postJson,
  startNode,
  token,
  type TestClient,
  type TestNode,
} from '../support/nodes.js';
import { useRedisCluster } from '../support/cluster.js';
import { until } from '../support/assertions.js';

const get = async (url: string): Promise<any> => {
  const res = await fetch(url, { headers: { authorization: `Bearer ${API_KEY}` } });
  expect(res.status, url).toBe(200);
  return res.json();
};

/** One sample's value from Prometheus text, or undefined. */
function sample(text: string, name: string, labels = ''): number | undefined {
  const line = text
    .split('\n')
    .find(
      (l) =>
        l.startsWith(`${name}${labels ? `{${labels}}` : ''} `) ||
        (labels === '' && l.startsWith(`${name} `)),
    );
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
}

describe('operations across two nodes (Redis)', () => {
  const cluster = useRedisCluster({ nodes: 2 });
  let a: TestNode;
  let b: TestNode;
  const clients: TestClient[] = [];

  beforeAll(async () => {
    [a, b] = cluster.nodes as [TestNode, TestNode];
    for (const [node, sub] of [
      [a, 'alice'],
      [a, 'bob'],
      [b, 'alice'],
    ] as const) {
      const c = await connectClient(node.url, { token: await token({ sub, channels: ['ops:*'] }) });
      expect(await c.join('ops:a')).toMatchObject({ ok: true });
      clients.push(c);
    }
    expect(await clients[0]!.join('ops:b')).toMatchObject({ ok: true });
  });
  afterAll(() => {
    for (const c of clients) c.close();
  });

  it('counts requested once per push and delivered once per socket written, per node', async () => {
    for (let i = 0; i < 3; i++)
      expect(
        (await postJson(`${b.url}/api/push`, { channel: 'ops:a', event: 'e', data: i })).status,
      ).toBe(200);
    await Promise.all(clients.map((c) => c.waitFor(3)));
    const [ma, mb] = await Promise.all(
      [a, b].map(async (n) => (await fetch(`${n.url}/metrics`)).text()),
    );
    expect(sample(mb!, 'pushcast_pushes_requested_total')).toBe(3);
    expect(sample(ma!, 'pushcast_pushes_requested_total')).toBe(0);
    expect(sample(ma!, 'pushcast_pushes_delivered_total')).toBe(6);
    expect(sample(mb!, 'pushcast_pushes_delivered_total')).toBe(3);
    expect(sample(ma!, 'pushcast_sockets_connected')).toBe(2);
    expect(sample(ma!, 'pushcast_channel_subscriptions')).toBe(3);
    expect(
      sample(mb!, 'pushcast_api_requests_total', 'route="/api/push",method="POST",status="200"'),
    ).toBe(3);
    expect(
      sample(mb!, 'pushcast_api_request_duration_seconds_count', 'route="/api/push",method="POST"'),
    ).toBe(3);
    expect(sample(ma!, 'pushcast_push_delivery_lag_seconds_count')).toBe(3);
    expect(sample(ma!, 'pushcast_inflight_pushes')).toBe(0);
    expect(sample(ma!, 'pushcast_draining')).toBe(0);
    expect(sample(ma!, 'pushcast_redis_up')).toBe(1);
    expect(ma).toMatch(/^process_cpu_user_seconds_total /m);
    expect(ma).toMatch(/^nodejs_eventloop_lag_seconds /m);
  });

  it('answers subscriber counts, occupied channels and presence for the whole cluster', async () => {
    expect(await get(`${b.url}/api/channels/ops:a`)).toEqual({ channel: 'ops:a', subscribers: 3 });
    const listed = await get(`${b.url}/api/channels?prefix=ops:`);
    expect(listed).toEqual({
      channels: [
        { channel: 'ops:a', subscribers: 3 },
        { channel: 'ops:b', subscribers: 1 },
      ],
    });
    const page1 = await get(`${a.url}/api/channels?prefix=ops:&limit=1`);
    expect(page1).toEqual({ channels: [{ channel: 'ops:a', subscribers: 3 }], next: 'ops:a' });
    const page2 = await get(`${a.url}/api/channels?prefix=ops:&limit=1&cursor=${page1.next}`);
    expect(page2).toEqual({ channels: [{ channel: 'ops:b', subscribers: 1 }] });
    expect(await get(`${a.url}/api/channels/ops:a/presence`)).toEqual({
      channel: 'ops:a',
      users: [
        { userId: 'alice', connections: 2 },
        { userId: 'bob', connections: 1 },
      ],
      count: 2,
    });
    // A leave is counted at once.
    expect(await clients[1]!.emit('leave', { channel: 'ops:a' })).toEqual({ ok: true });
    expect(await get(`${a.url}/api/channels/ops:a`)).toEqual({ channel: 'ops:a', subscribers: 2 });
    expect(await clients[1]!.join('ops:a')).toMatchObject({ ok: true });
  });

  it('lists every live node in /api/stats with version, uptime, state, sockets, channels and rates', async () => {
    // Rates count whole seconds: wait for node B's to include the pushes of the first test.
    const stats = await until(
      async () => {
        const answer = await get(`${a.url}/api/stats`);
        const node = answer.nodes.find((n: { id: string }) => n.id === b.server.node);
        return node?.rates.requested60s > 0 && answer;
      },
      5000,
      "node B's push rate in /api/stats",
    );
    expect(stats.nodes).toHaveLength(2);
    const ids = stats.nodes.map((n: { id: string }) => n.id).sort();
    expect(ids).toEqual([a.server.node, b.server.node].sort());
    const nb = stats.nodes.find((n: { id: string }) => n.id === b.server.node);
    expect(nb).toMatchObject({
      version: expect.any(String),
      state: 'ready',
      sockets: 1,
      channels: 1,
      inflight: 0,
    });
    expect(nb.uptimeS).toBeGreaterThanOrEqual(0);
    expect(nb.rates.requested60s).toBeGreaterThan(0);
    expect(stats.totals).toMatchObject({ nodes: 2, sockets: 3, subscriptions: 4 });
  });

  it('needs the read scope', async () => {
    const res = await fetch(`${a.url}/api/stats`);
    expect(res.status).toBe(401);
  });
});

describe('a crashed node', () => {
  let redis: RedisFixture;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => redis?.stop());

  it('stops counting within 30 s of a SIGKILL', async () => {
    const survivor = await startNode({ redisUrl: redis.url });
    const port = await freePort();
    await using victim = spawnNode({
      script: 'src/main.ts',
      env: {
        PORT: String(port),
        HOST: '127.0.0.1',
        REDIS_URL: redis.url,
        PUSHCAST_API_KEYS: API_KEY,
        PUSHCAST_JWT_SECRET: JWT_SECRET,
        NODE_ENV: 'test',
      },
    });
    await victim.waitForLine(/pushcast ready/);
    const jwt = await token({ sub: 'u', channels: ['crash'] });
    const local = await connectClient(survivor.url, { token: jwt });
    const remote = [
      await connectClient(`http://127.0.0.1:${port}`, { token: jwt }),
      await connectClient(`http://127.0.0.1:${port}`, { token: jwt }),
    ];
    try {
      for (const c of [local, ...remote]) await c.join('crash');
      expect(await get(`${survivor.url}/api/channels/crash`)).toEqual({
        channel: 'crash',
        subscribers: 3,
      });
      expect((await get(`${survivor.url}/api/stats`)).nodes).toHaveLength(2);
      victim.kill('SIGKILL');
      await victim.exited;
      const killed = Date.now();
      await until(
        async () => (await get(`${survivor.url}/api/channels/crash`)).subscribers === 1,
        30_000,
        'the crashed node to stop counting',
      );
      expect(Date.now() - killed).toBeLessThan(30_000);
      expect((await get(`${survivor.url}/api/stats`)).nodes).toHaveLength(1);
    } finally {
      for (const c of [local, ...remote]) c.close();
      await survivor.stop();
    }
  }, 45_000);
});

describe('Grafana dashboard (k8s/grafana-dashboard.json)', () => {
  it('only uses metrics a node exports', async () => {
    const { readFileSync } = await import('node:fs');
    const dashboard = JSON.parse(readFileSync('k8s/grafana-dashboard.json', 'utf8'));
    const exprs: string[] = dashboard.panels.flatMap((p: any) =>
      p.targets.map((t: any) => t.expr as string),
    );
    const names = new Set(
      exprs.flatMap((e) => e.match(/\b(?:pushcast|process|nodejs)_[a-z0-9_]+/g) ?? []),
    );
    expect(names.size).toBeGreaterThanOrEqual(10);
    const node = await startNode();
    try {
      // Labelled series exist once something was counted.
      await get(`${node.url}/api/stats`);
      const text = await (await fetch(`${node.url}/metrics`)).text();
      const exported = new Set(
        text
          .split('\n')
          .filter((l) => l && !l.startsWith('#'))
          .map((l) => l.split(/[{ ]/)[0]),
      );
      for (const name of names) expect(exported.has(name), name).toBe(true);
      for (const required of [
        'pushcast_sockets_connected',
        'pushcast_pushes_requested_total',
        'pushcast_pushes_delivered_total',
        'pushcast_push_delivery_lag_seconds_bucket',
      ])
        expect(names.has(required), required).toBe(true);
    } finally {
      await node.stop();
    }
  });
});
