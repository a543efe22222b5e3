/**
 * One measured window of pushes and their deliveries, on a cell whose subscribers are joined:
 * publish, wait until every delivery expected has arrived (or they stop coming), and read what it
 * cost. The window runs from the first push to the last delivery seen; the CPU of the nodes, of
 * Redis and of the load workers is read over it.
 */
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { pct } from '../support.js';
import { CpuWindow } from './cpu-window.js';
import type { PublishRequest } from './load-messages.js';
import type { Cell } from './matrix.js';

/** Past this, a warning: the machine was shared with other work while it measured. */
const OTHERS_WARN_CORES = 0.25;
/** A CPU this busy (share of a core, or of the machine's cores) is taken as used up. */
const BUSY = 0.9;

/** What a window measured. */
export interface DeliveryRun {
  /** Pushes answered with an id, and the others by status. */
  pushes: number;
  pushFailures: Record<string, number>;
  /** Pushes answered times the subscribers joined to their channel. */
  expected: number;
  received: number;
  /** expected - received (negative: duplicates). */
  missing: number;
  /** Subscribers whose connection the server closed during the window. */
  dropped: number;
  /** First push to last delivery, in s. */
  wallS: number;
  pushesPerS: number;
  deliveriesPerS: number;
  nodesCpuS: number;
  redisCpuS: number | undefined;
  /** Node CPU seconds per million deliveries (all nodes together). */
  cpuPer1M: number;
  redisCpuPer1M: number | undefined;
  /** Node CPU seconds per wall second (up to the number of nodes). */
  serverShare: number;
  /** Cores busy on the machine, and those of them taken by processes outside the benchmark. */
  machineCores: number;
  otherCores: number;
  /** Publish to receive, in ms. */
  latency: { p50: number; p90: number; p99: number; max: number };
  /** Push request to answer, in ms. */
  requestLatency: { p50: number; p99: number };
  workerShares: number[];
  clientLimited: boolean;
  /**
   * The machine had no core left (90% of all busy) while no node had a core to itself (90%) and
   * no load worker was at its limit: the server was short of CPU because it shares the machine.
   */
  machineLimited: boolean;
}

/** Publishes as `spec` says and measures the deliveries to the subscribers joined so far. */
export async function measureDeliveries(
  cell: Cell,
  spec: Omit<PublishRequest, 'urls' | 'apiKey'>,
  options: { spread: boolean; quietMs: number; maxMs: number },
): Promise<DeliveryRun> {
  const { client, target } = cell;
  await client.mark();
  const cpu = await CpuWindow.open(target, cell.redis);
  const start = performance.now();
  const published = await client.publish(target, spec, options.spread);
  const expected = Object.entries(published.pushedTo).reduce(
    (a, [channel, n]) => a + n * (client.members[channel] ?? 0),
    0,
  );
  const { received, lastAt } = await client.awaitDeliveries(expected, options);
  const end = Math.max(lastAt, start + published.wallS * 1000);
  const window = await cpu.close(end);
  const report = await client.report(window.wallS);
  const lat = report.latencies;
  const benchCpuS =
    window.nodesCpuS +
    (window.redisCpuS ?? 0) +
    window.selfCpuS +
    report.workerShares.reduce((a, share) => a + share * window.wallS, 0);
  const machineCores = window.machineBusyS / window.spanS;
  const otherCores = Math.max(0, (window.machineBusyS - benchCpuS) / window.spanS);
  if (otherCores > OTHERS_WARN_CORES)
    console.warn(
      `compare: processes outside the benchmark took ${otherCores.toFixed(2)} cores in this window`,
    );
  return {
    pushes: published.pushes,
    pushFailures: published.failures,
    expected,
    received,
    missing: expected - received,
    dropped: report.dropped,
    wallS: window.wallS,
    pushesPerS: published.pushes / published.wallS,
    deliveriesPerS: received / window.wallS,
    nodesCpuS: window.nodesCpuS,
    redisCpuS: window.redisCpuS,
    cpuPer1M: (window.nodesCpuS / received) * 1e6,
    redisCpuPer1M: window.redisCpuS === undefined ? undefined : (window.redisCpuS / received) * 1e6,
    serverShare: window.nodesCpuS / window.wallS,
    machineCores,
    otherCores,
    latency: { p50: pct(lat, 50), p90: pct(lat, 90), p99: pct(lat, 99), max: pct(lat, 100) },
    requestLatency: { p50: pct(published.latencies, 50), p99: pct(published.latencies, 99) },
    workerShares: report.workerShares,
    clientLimited: report.clientLimited,
    machineLimited:
      machineCores >= BUSY * availableParallelism() &&
      window.nodesCpuS / window.wallS < BUSY * target.nodes.length &&
      !report.clientLimited,
  };
}

/** A run for the JSON details: figures rounded, nothing per message. */
export function summary(run: DeliveryRun): Record<string, unknown> {
  return JSON.parse(
    JSON.stringify(run, (_k, v: unknown) =>
      typeof v === 'number' && !Number.isInteger(v) ? Math.round(v * 1000) / 1000 : v,
    ),
  ) as Record<string, unknown>;
}
