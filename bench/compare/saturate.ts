/**
 * `saturate`: one channel with 2,000 subscribers, pushed to as fast as the server answers (eight
 * keep-alive publishers, one request in flight each) for a few seconds. Deliveries per second,
 * the server's CPU share and its CPU per million deliveries, and what held it back: a load worker
 * that had used up its core (client-limited: the figure is the client's limit, not the server's),
 * or a machine with no core left while the server had none to itself (machine-limited: the load
 * and the server share two cores, so the deliveries per second are a floor; the CPU per million
 * deliveries holds).
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

const CHANNEL = 'bench:saturate';
const LANES = 8;

interface SaturateRun extends DeliveryRun {
  subscribers: number;
  connectFailures: Record<string, number>;
}

export class Saturate implements Comparison {
  readonly name = 'saturate';
  private readonly outcomes = new Outcomes<SaturateRun>();
  private readonly subscribers: number;
  private readonly durationMs: number;

  constructor(options: CompareOptions) {
    this.subscribers = options.quick ? 500 : 2000;
    this.durationMs = options.quick ? 1000 : 5000;
  }

  async run(cell: Cell): Promise<void> {
    const joined = await cell.client.subscribe(cell.target, 0, this.subscribers, {
      channel: CHANNEL,
    });
    await sleep(cell.nodes === 2 ? 500 : 200);
    const run = await measureDeliveries(
      cell,
      {
        channels: [CHANNEL],
        pick: 'cycle',
        batch: 1,
        lanes: LANES,
        durationMs: this.durationMs,
        dataBytes: 100,
      },
      // A backlog may take a while to drain after the publishers stop.
      { spread: true, quietMs: 2000, maxMs: 30_000 },
    );
    this.outcomes.set(cell, {
      ...run,
      subscribers: cell.client.members[CHANNEL] ?? 0,
      connectFailures: joined.errors,
    });
  }

  record(): void {
    const all: Record<string, unknown> = {};
    for (const [nodes, runs] of this.outcomes.entries()) {
      const bench = `saturate ${this.subscribers}, ${topologyLabel(nodes)}`;
      recordSideBySide(bench, runs, [
        { metric: 'subscribers joined', unit: 'sockets', of: (r) => r.subscribers },
        { metric: 'pushes per second', unit: 'push/s', of: (r) => r.pushesPerS },
        {
          metric: 'deliveries per second',
          unit: 'msg/s',
          of: (r) => r.deliveriesPerS,
          ratio: true,
        },
        { metric: 'deliveries missing', unit: 'msg', of: (r) => r.missing },
        { metric: 'subscribers dropped by the server', unit: 'sockets', of: (r) => r.dropped },
        { metric: 'server CPU share', unit: '% of a core', of: (r) => r.serverShare * 100 },
        { metric: 'server CPU per 1M deliveries', unit: 's', of: (r) => r.cpuPer1M, ratio: true },
        { metric: 'Redis CPU per 1M deliveries', unit: 's', of: (r) => r.redisCpuPer1M },
        { metric: 'latency p99 (queued)', unit: 'ms', of: (r) => r.latency.p99 },
        {
          metric: 'busiest load worker',
          unit: '% of a core',
          of: (r) => Math.max(...r.workerShares) * 100,
        },
        { metric: 'client-limited', unit: '1 = yes', of: (r) => (r.clientLimited ? 1 : 0) },
        { metric: 'machine busy', unit: 'cores', of: (r) => r.machineCores },
        { metric: 'machine-limited', unit: '1 = yes', of: (r) => (r.machineLimited ? 1 : 0) },
        // Cores that neither the servers, Redis nor the load had: a machine shared with other work.
        { metric: 'other processes on the machine', unit: 'cores', of: (r) => r.otherCores },
      ]);
      all[bench] = eachOutcome(runs, summary);
    }
    details.saturate = all;
  }
}
