import { beforeAll, describe, expect, it } from 'vitest';
import type { RedisFixture } from '../support/redis.js';
import { API_KEY, type TestNode } from '../support/nodes.js';
import { until } from '../support/assertions.js';
import { useRedisCluster } from '../support/cluster.js';

/** The cluster read routes (channels, presence, stats) while Redis is away, and after. */
describe('cluster APIs while Redis is away', () => {
  const cluster = useRedisCluster();
  let redis: RedisFixture;
  let node: TestNode;
  beforeAll(() => {
    ({ redis, node } = cluster);
  });
  const readyz = async (): Promise<number> => (await fetch(`${node.url}/readyz`)).status;

  it('answer 503 unavailable with Retry-After, and the node keeps serving', async () => {
    await redis.kill();
    await until(async () => (await readyz()) === 503, 5000, 'the node to see the outage');
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
    await until(async () => (await readyz()) === 200, 10_000, 'the node to be ready again');
    const back = await fetch(`${node.url}/api/channels/a`, {
      headers: { authorization: `Bearer ${API_KEY}` },
    });
    expect(back.status).toBe(200);
  });
});
