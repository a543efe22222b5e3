import { afterAll, beforeAll } from 'vitest';
import type { Backend } from '../../src/backend/backend.js';
import { backendBusHarness } from '../contracts/redis-bus-harness.js';
import type { HistoryPolicy } from '../../src/delivery/history-policy.js';
import type { BusHarness } from './contracts.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { startCluster, startNode, type TestNode } from './nodes.js';
import {
  startRedis,
  startRedisCluster,
  type RedisClusterFixture,
  type RedisFixture,
} from './redis.js';

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

/** A real Redis Cluster and the nodes of the enclosing describe block on it. */
export interface NodesOnRedisCluster {
  readonly redis: RedisClusterFixture;
  readonly nodes: TestNode[];
  /** The first node. */
  readonly node: TestNode;
}

/**
 * Starts a real Redis Cluster on loopback (`masters` masters, each with `replicas` replicas) and
 * `nodes` real nodes on it (REDIS_CLUSTER_NODES = every cluster node) before the enclosing
 * describe block's tests, and stops them all after. One cluster per test file keeps the suite's
 * time in bounds: start it in the file's outermost describe.
 */
export function useNodesOnRedisCluster(
  options: { masters?: number; replicas?: 0 | 1; nodes?: number; config?: ConfigInput } = {},
): NodesOnRedisCluster {
  let redis: RedisClusterFixture | undefined;
  let nodes: TestNode[] = [];
  beforeAll(async () => {
    redis = await startRedisCluster({
      masters: options.masters ?? 3,
      replicas: options.replicas ?? 0,
    });
    for (let i = 0; i < (options.nodes ?? 1); i++)
      nodes.push(await startNode({ redisClusterNodes: redis.seeds, ...options.config }));
  }, 60_000);
  afterAll(async () => {
    await Promise.allSettled(nodes.map((n) => n.stop()));
    nodes = [];
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

/** The bus harness (test/contracts/redis-bus-harness.ts) on a Redis Cluster given by its seeds. */
export function redisClusterBusHarness(
  seeds: string[],
  history: HistoryPolicy,
  config: ConfigInput = {},
): Promise<BusHarness & { backend: Backend }> {
  return backendBusHarness({ ...config, redisClusterNodes: seeds }, history);
}
