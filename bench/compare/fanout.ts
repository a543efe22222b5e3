/**
 * `fanout`: one channel, N subscribers (the sizes, smallest first, added to the same server; half
 * on each node with two), a fixed push rate of ~100-byte pushes for a few seconds. Every delivery must arrive; what it costs
 * the server (CPU seconds per million deliveries) and how long a push takes to reach a subscriber.
 * The rate keeps the deliveries per second the same at every size, well below what any target
 * saturates at here, so the figures are costs, not capacities.
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

// 12 characters: room names of exactly 20 are taken for socket ids by the sharded adapter.
const CHANNEL = 'bench:fanout';
/** Deliveries per second at every size (the push rate is this over N, at most 20 pushes/s). */
const DELIVERIES_PER_S = 20_000;
const MAX_RATE = 20;

/** A size's outcome: its window, and how the subscribers it added connected. */
interface FanoutRun extends DeliveryRun {
  rate: number;
  subscribers: number;
  connectFailures: Record<string, number>;
}

export class Fanout implements Comparison {
  readonly name = 'fanout';
  private readonly outcomes = new Outcomes<Map<number, FanoutRun>>();
  private readonly sizes: number[];
  private readonly durationMs: number;

  constructor(options: CompareOptions) {
    this.sizes = [...new Set(options.sizes)].sort((a, b) => a - b);
    this.durationMs = options.quick ? 500 : 3000;
  }

  async run(cell: Cell): Promise<void> {
    const bySize = new Map<number, FanoutRun>();
    this.outcomes.set(cell, bySize);
    const connectFailures: Record<string, number> = {};
    let have = 0;
    for (const size of this.sizes) {
      const added = await cell.client.subscribe(cell.target, have, size, { channel: CHANNEL });
      have = size;
      for (const [why, n] of Object.entries(added.errors))
        connectFailures[why] = (connectFailures[why] ?? 0) + n;
      // Socket.IO's sharded adapter subscribes a node to a room without waiting for Redis.
      await sleep(cell.nodes === 2 ? 500 : 200);
      const rate = Math.min(MAX_RATE, DELIVERIES_PER_S / size);
      const run = await measureDeliveries(
        cell,
        {
          channels: [CHANNEL],
          pick: 'cycle',
          batch: 1,
          rate,
          lanes: 4,
          durationMs: this.durationMs,
          dataBytes: 100,
        },
        { spread: false, quietMs: 2000, maxMs: 15_000 },
      );
      bySize.set(size, {
        ...run,
        rate,
        subscribers: cell.client.members[CHANNEL] ?? 0,
        connectFailures: { ...connectFailures },
      });
    }
  }

  record(): void {
    const all: Record<string, unknown> = {};
    for (const [nodes, byKind] of this.outcomes.entries())
      for (const size of this.sizes) {
        const bench = `fanout ${size}, ${topologyLabel(nodes)}`;
        const runs = eachOutcome(byKind, (bySize) => bySize.get(size));
        recordSideBySide(bench, runs, [
          { metric: 'subscribers joined', unit: 'sockets', of: (r) => r.subscribers },
          { metric: 'deliveries expected', unit: 'msg', of: (r) => r.expected },
          { metric: 'deliveries missing', unit: 'msg', of: (r) => r.missing },
          {
            metric: 'server CPU per 1M deliveries',
            unit: 's',
            of: (r) => r.cpuPer1M,
            ratio: true,
          },
          { metric: 'Redis CPU per 1M deliveries', unit: 's', of: (r) => r.redisCpuPer1M },
          { metric: 'latency p50', unit: 'ms', of: (r) => r.latency.p50 },
          { metric: 'latency p99', unit: 'ms', of: (r) => r.latency.p99, ratio: true },
        ]);
        all[bench] = eachOutcome(runs, summary);
      }
    details.fanout = all;
  }
}
