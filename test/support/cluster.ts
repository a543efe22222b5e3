import { afterAll, beforeAll } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import { startCluster, type TestNode } from './nodes.js';
import { startRedis, type RedisFixture } from './redis.js';

/** The Redis and nodes of the enclosing describe block (filled in before its tests run). */
export interface RedisCluster {
  readonly redis: RedisFixture;
  readonly nodes: TestNode[];
  /** The first node. */
  readonly node: TestNode;
}

/**
 * Starts a real redis-server and `nodes` real nodes on it before the enclosing describe block's
 * tests, and stops them all after.
 */
export function useRedisCluster(
  options: { nodes?: number; config?: ConfigInput } = {},
): RedisCluster {
  let redis: RedisFixture | undefined;
  let nodes: TestNode[] = [];
  beforeAll(async () => {
    redis = await startRedis();
    nodes = await startCluster({
      nodes: options.nodes ?? 1,
      redisUrl: redis.url,
      config: options.config,
    });
  });
  afterAll(async () => {
    await Promise.allSettled(nodes.map((n) => n.stop()));
    await redis?.stop();
  });
  return {
    get redis() {
      return redis!;
    },
    get nodes() {
      return nodes;
    },
    get node() {
      return nodes[0]!;
    },
  };
}
