/**
 * `api`: the push API as fast as it answers, with 16 keep-alive connections spread over the load
 * workers: POST /api/push for a few seconds, then POST /api/push/batch (100 pushes a request).
 * Pushes per second (pushes, not requests), request latency, the server's CPU per push. Two
 * subscribers on the channel (one per node with two nodes) check that what was answered arrived.
 */
import { details, sleep } from '../support.js';
import { measureDeliveries, summary, type DeliveryRun } from './delivery-run.js';
import {
  Outcomes,
  topologyLabel,
  type Cell,
  type CompareOptions,
  type Comparison,
} from './matrix.js';
import { eachOutcome, recordSideBySide } from './side-by-side.js';

const CHANNEL = 'bench:api';
const LANES = 16;
const BATCH = 100;

export class Api implements Comparison {
  readonly name = 'api';
  private readonly outcomes = new Outcomes<{ single: DeliveryRun; batch: DeliveryRun }>();
  private readonly durationMs: number;

  constructor(options: CompareOptions) {
    this.durationMs = options.quick ? 500 : 3000;
  }

  async run(cell: Cell): Promise<void> {
    // Subscribers 0 and 1: one on each node with two.
    await cell.client.subscribe(cell.target, 0, 2, { channel: CHANNEL });
    await sleep(cell.nodes === 2 ? 500 : 200);
    const window = (batch: number): Promise<DeliveryRun> =>
      measureDeliveries(
        cell,
        {
          channels: [CHANNEL],
          pick: 'cycle',
          batch,
          lanes: LANES,
          durationMs: this.durationMs,
          dataBytes: 100,
        },
        { spread: true, quietMs: 2000, maxMs: 15_000 },
      );
    const single = await window(1);
    const batch = await window(BATCH);
    this.outcomes.set(cell, { single, batch });
  }

  record(): void {
    const all: Record<string, unknown> = {};
    const notAnswered = (r: DeliveryRun): number =>
      Object.values(r.pushFailures).reduce((a, n) => a + n, 0);
    const cpuPerPushUs = (r: DeliveryRun): number => (r.nodesCpuS / r.pushes) * 1e6;
    for (const [nodes, runs] of this.outcomes.entries()) {
      const bench = `api, ${topologyLabel(nodes)}`;
      const batch = `batch of ${BATCH}`;
      recordSideBySide(bench, runs, [
        {
          metric: 'single pushes per second',
          unit: 'push/s',
          of: (r) => r.single.pushesPerS,
          ratio: true,
        },
        { metric: 'single latency p50', unit: 'ms', of: (r) => r.single.requestLatency.p50 },
        { metric: 'single latency p99', unit: 'ms', of: (r) => r.single.requestLatency.p99 },
        { metric: 'single server CPU per push', unit: 'µs', of: (r) => cpuPerPushUs(r.single) },
        {
          metric: `${batch} pushes per second`,
          unit: 'push/s',
          of: (r) => r.batch.pushesPerS,
          ratio: true,
        },
        { metric: `${batch} latency p50`, unit: 'ms', of: (r) => r.batch.requestLatency.p50 },
        { metric: `${batch} latency p99`, unit: 'ms', of: (r) => r.batch.requestLatency.p99 },
        { metric: `${batch} server CPU per push`, unit: 'µs', of: (r) => cpuPerPushUs(r.batch) },
        {
          metric: 'batch/single pushes per second',
          unit: 'x',
          of: (r) => r.batch.pushesPerS / r.single.pushesPerS,
        },
        {
          metric: 'pushes not answered 200',
          unit: 'push',
          of: (r) => notAnswered(r.single) + notAnswered(r.batch),
        },
        {
          metric: 'deliveries missing',
          unit: 'msg',
          of: (r) => r.single.missing + r.batch.missing,
        },
        {
          metric: 'client-limited',
          unit: '1 = yes',
          of: (r) => (r.single.clientLimited || r.batch.clientLimited ? 1 : 0),
        },
        {
          metric: 'machine-limited (see saturate)',
          unit: '1 = yes',
          of: (r) => (r.single.machineLimited || r.batch.machineLimited ? 1 : 0),
        },
      ]);
      all[bench] = {
        single: eachOutcome(runs, (r) => summary(r.single)),
        batch: eachOutcome(runs, (r) => summary(r.batch)),
      };
    }
    details.api = all;
  }
}
