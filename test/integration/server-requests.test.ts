import { describe, expect, it } from 'vitest';
import { until } from '../support/assertions.js';
import { useRedisCluster } from '../support/cluster.js';
import { disconnectUser, unsubscribeUser, watchEnd } from '../support/control.js';
import { API_KEY, connectClient, token, type TestNode } from '../support/nodes.js';

/**
 * Requests a node sends every other node (cluster views and the control API,
 * src/cluster/server-requests.ts) when Redis fails under them.
 */

const get = (node: TestNode, path: string) =>
  fetch(`${node.url}${path}`, { headers: { authorization: `Bearer ${API_KEY}` } });

describe('server-side requests when the node count fails', () => {
  const cluster = useRedisCluster({ nodes: 2 });

  // Found while building the control API: the adapter starts a request by counting the nodes (a
  // Redis command, PUBSUB SHARDNUMSUB). When that command failed (a Redis error, or slower than
  // the command timeout while the bus still counted as ready), the rejection went unhandled
  // (Node ends the process on one) and the request's callback never ran, so `GET /api/stats`
  // never answered.
  it('answers the views without the other nodes and refuses actions with 503, without an unhandled rejection', async () => {
    const [a, b] = cluster.nodes as [TestNode, TestNode];
    const adapter = a.server.io.of('/').adapter as unknown as { serverCount(): Promise<number> };
    adapter.serverCount = () => Promise.reject(new Error('PUBSUB SHARDNUMSUB failed'));
    try {
      const stats = await get(a, '/api/stats');
      expect(stats.status).toBe(200);
      const body = (await stats.json()) as { nodes: Array<{ id: string }> };
      // Left out, as a node that does not answer in time is.
      expect(body.nodes.map((n) => n.id)).toEqual([a.server.node]);
      expect((await get(a, '/api/channels/sr:a')).status).toBe(200);
      // An action that cannot reach every node says so.
      const answer = await disconnectUser(a, 'nobody');
      expect(answer.status).toBe(503);
      expect(answer.body.code).toBe('unavailable');
      expect(answer.headers.get('retry-after')).toBe('1');
    } finally {
      delete (adapter as { serverCount?: unknown }).serverCount;
    }
    const stats = (await (await get(a, '/api/stats')).json()) as { nodes: unknown[] };
    expect(stats.nodes).toHaveLength(2);
    expect((await disconnectUser(b, 'nobody')).body).toEqual({ disconnected: 0 });
  });
});

describe('control API while Redis is away', () => {
  const cluster = useRedisCluster();

  it('answers 503 with Retry-After and does nothing, then works once Redis is back', async () => {
    const { node, redis } = cluster;
    const client = await connectClient(node.url, {
      token: await token({ sub: 'mia', channels: ['away:*'] }),
    });
    try {
      expect(await client.join('away:a')).toMatchObject({ ok: true });
      const end = watchEnd(client.socket);
      await redis.kill();
      await until(
        async () => (await fetch(`${node.url}/readyz`)).status === 503,
        5000,
        'the node to see the outage',
      );
      for (const answer of [
        await disconnectUser(node, 'mia'),
        await unsubscribeUser(node, 'away:a', 'mia'),
      ]) {
        expect(answer.status).toBe(503);
        expect(answer.body.code).toBe('unavailable');
        expect(answer.headers.get('retry-after')).toBe('1');
      }
      // Nothing was done, not even on this node: the answer says it did nothing anywhere.
      expect(client.socket.connected).toBe(true);
      expect(end.lefts).toEqual([]);

      await redis.restart();
      await until(
        async () => (await fetch(`${node.url}/readyz`)).status === 200,
        10_000,
        'the node to be ready again',
      );
      expect((await disconnectUser(node, 'mia')).body).toEqual({ disconnected: 1 });
      await until(() => end.reason !== undefined, 5000, 'the disconnect');
    } finally {
      client.close();
    }
  });
});
