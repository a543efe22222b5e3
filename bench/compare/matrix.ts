/**
 * The comparison matrix: each topology (one node; two nodes sharing one Redis), each target on
 * it, one target at a time on a machine otherwise left to it, and every comparison scenario on
 * that target in turn. A target is started once per topology for all the scenarios, and the
 * subscribers stay open from one scenario to the next, each joining the channels of the next (a
 * pushcast node takes seconds to start, and opening a connection costs a server several times a
 * join). A scenario that fails is reported and skipped, never retried; the servers are stopped
 * either way.
 */
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { startRedis } from '../../test/support/redis.js';
import { details } from '../support.js';
import type { LoadClient } from './load-client.js';
import { startTarget, type Target, type TargetKind } from './targets.js';

/** Options of the comparison scenarios (run.ts parses them). */
export interface CompareOptions {
  targets: TargetKind[];
  topologies: Array<1 | 2>;
  /** Subscriber counts for `fanout`. */
  sizes: number[];
  /** Smaller sizes and shorter windows: a smoke run. */
  quick: boolean;
}

/** One target on one topology, with the load pointed at it. */
export interface Cell {
  kind: TargetKind;
  nodes: 1 | 2;
  target: Target;
  /** A connection to the Redis the nodes share (two nodes only), for its CPU. */
  redis: Redis | undefined;
  client: LoadClient;
}

/** A comparison scenario: what it measures on a cell, and its rows once every cell has run. */
export interface Comparison {
  readonly name: string;
  /** Needs the nodes started with --expose-gc (SIGUSR2 runs a full GC). */
  readonly gc?: boolean;
  run(cell: Cell): Promise<void>;
  record(): void;
}

/** A scenario's outcomes: by topology, then by target. */
export class Outcomes<T> {
  private readonly byNodes = new Map<1 | 2, Partial<Record<TargetKind, T>>>();

  set(cell: Cell, outcome: T): void {
    const byKind = this.byNodes.get(cell.nodes) ?? {};
    byKind[cell.kind] = outcome;
    this.byNodes.set(cell.nodes, byKind);
  }

  /** Each topology that has an outcome, with the outcomes of its targets. */
  entries(): Array<[1 | 2, Partial<Record<TargetKind, T>>]> {
    return [...this.byNodes];
  }
}

/** `1 node` or `2 nodes + Redis`, for row labels. */
export const topologyLabel = (nodes: 1 | 2): string => (nodes === 1 ? '1 node' : '2 nodes + Redis');

/**
 * Runs every comparison on every cell, then records their rows. Answers the seconds spent in
 * each scenario, and in starting and stopping the servers (`servers`).
 */
export async function runMatrix(
  options: CompareOptions,
  client: LoadClient,
  comparisons: Comparison[],
): Promise<Record<string, number>> {
  const spent: Record<string, number> = { servers: 0 };
  const timed = async (name: string, step: () => Promise<void>): Promise<void> => {
    const t0 = performance.now();
    try {
      await step();
    } finally {
      spent[name] = (spent[name] ?? 0) + (performance.now() - t0) / 1000;
    }
  };
  const gc = comparisons.some((c) => c.gc === true);
  for (const nodes of options.topologies) {
    let redis: Awaited<ReturnType<typeof startRedis>> | undefined;
    await timed('servers', async () => {
      redis = nodes === 2 ? await startRedis() : undefined;
    });
    const admin = redis ? new Redis(redis.url) : undefined;
    try {
      for (const kind of options.targets) {
        const label = `${kind}, ${topologyLabel(nodes)}`;
        let target: Target | undefined;
        try {
          await timed('servers', async () => {
            await admin?.flushall();
            target = await startTarget(kind, { nodes, redisUrl: redis?.url, gc });
          });
          const cell: Cell = { kind, nodes, target: target!, redis: admin, client };
          for (const comparison of comparisons) {
            console.log(`compare ${comparison.name}: ${label}`);
            await timed(comparison.name, async () => {
              try {
                await comparison.run(cell);
              } catch (err) {
                failed(`${comparison.name} ${label}`, err);
              }
            });
          }
        } catch (err) {
          failed(label, err);
        } finally {
          await timed('servers', async () => {
            // The server closes its sockets first (see the `close` operation), then the load.
            const closing = client.close(3000);
            await target?.stop();
            await closing;
          });
        }
      }
    } finally {
      admin?.disconnect();
      await redis?.stop();
    }
  }
  for (const comparison of comparisons) comparison.record();
  return Object.fromEntries(Object.entries(spent).map(([k, s]) => [k, Math.round(s * 10) / 10]));
}

function failed(what: string, err: unknown): void {
  console.error(`compare ${what} failed: ${String(err)}`);
  const errors = (details.compareErrors ??= []) as string[];
  errors.push(`${what}: ${String(err)}`);
}
