import { describe, expect, it } from 'vitest';
import { useRedisCluster } from '../support/cluster.js';
import { postJson, type TestNode } from '../support/nodes.js';

// The per-API-key push limit holds for the cluster, not per node: two nodes on one Redis let a key
// push its burst once between them.

describe('push rate limit across nodes (Redis)', () => {
  const cluster = useRedisCluster({
    nodes: 2,
    // A burst of 10 over a 10 s window: nothing refills during the test.
    config: { limits: { pushesPerSecond: 1, pushBurst: 10 } },
  });

  it('lets a key push its burst once across both nodes, then answers 429 with Retry-After', async () => {
    const [a, b] = cluster.nodes as [TestNode, TestNode];
    const push = (node: TestNode, n: number) =>
      postJson(`${node.url}/api/push`, { channel: 'limit:1', event: 'e', data: n });
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await push(a, i)).status);
    for (let i = 0; i < 8; i++) statuses.push((await push(b, i)).status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(10);
    expect(statuses.filter((s) => s === 429)).toHaveLength(6);
    const refused = await push(a, 99);
    expect({ status: refused.status, code: refused.body.code }).toEqual({
      status: 429,
      code: 'rate_limited',
    });
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  });

  it('charges a batch whole on the shared limit', async () => {
    const [, b] = cluster.nodes as [TestNode, TestNode];
    const res = await postJson(`${b.url}/api/push/batch`, {
      pushes: [{ channel: 'limit:2', event: 'e', data: 1 }],
    });
    // The key's burst is spent cluster-wide by the test before.
    expect(res.status).toBe(429);
  });

  it('while Redis is away answers 503 (the bus is down), never a 500 or a hang', async () => {
    const [a] = cluster.nodes as [TestNode];
    await cluster.redis.stop();
    try {
      const res = await postJson(`${a.url}/api/push`, { channel: 'limit:3', event: 'e', data: 1 });
      // The limiter falls back to this node's memory; the push itself cannot be published.
      expect({ status: res.status, code: res.body.code }).toEqual({
        status: 503,
        code: 'unavailable',
      });
    } finally {
      await cluster.redis.restart();
    }
  });
});
