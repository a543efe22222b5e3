/**
 * `many-channels`: 2,000 channels of 5 subscribers each (10,000 sockets), pushes to channels
 * picked at random at a fixed rate for a few seconds. With two nodes each channel has subscribers
 * on both, so every push crosses Redis. Pushes and deliveries per second, deliveries missing,
 * publish-to-receive p99 and the server's CPU per million deliveries.
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

const PER_CHANNEL = 5;
// `bench:mc:<n>`: at most 13 characters, never the 20 the sharded adapter takes for a socket id.
const CHANNEL_PREFIX = 'bench:mc:';

interface ManyChannelsRun extends DeliveryRun {
  subscribers: number;
  connectFailures: Record<string, number>;
}

export class ManyChannels implements Comparison {
  readonly name = 'many-channels';
  private readonly outcomes = new Outcomes<ManyChannelsRun>();
  private readonly channels: string[];
  private readonly rate: number;
  private readonly durationMs: number;

  constructor(options: CompareOptions) {
    this.channels = [...Array(options.quick ? 200 : 2000).keys()].map(
      (c) => `${CHANNEL_PREFIX}${c}`,
    );
    this.rate = options.quick ? 200 : 500;
    this.durationMs = options.quick ? 1000 : 4000;
  }

  async run(cell: Cell): Promise<void> {
    // Subscribers 5c to 5c + 4 on channel c: with two nodes, on both of them.
    const joined = await cell.client.subscribe(cell.target, 0, this.channels.length * PER_CHANNEL, {
      prefix: CHANNEL_PREFIX,
      per: PER_CHANNEL,
    });
    await sleep(cell.nodes === 2 ? 1000 : 200);
    const run = await measureDeliveries(
      cell,
      {
        channels: this.channels,
        pick: 'random',
        batch: 1,
        rate: this.rate,
        lanes: 8,
        durationMs: this.durationMs,
        dataBytes: 100,
      },
      { spread: false, quietMs: 2000, maxMs: 15_000 },
    );
    this.outcomes.set(cell, {
      ...run,
      subscribers: joined.connected + joined.rejoined,
      connectFailures: joined.errors,
    });
  }

  record(): void {
    const all: Record<string, unknown> = {};
    for (const [nodes, runs] of this.outcomes.entries()) {
      const bench = `many-channels ${this.channels.length}x${PER_CHANNEL}, ${topologyLabel(nodes)}`;
      recordSideBySide(bench, runs, [
        { metric: 'subscribers joined', unit: 'sockets', of: (r) => r.subscribers },
        { metric: 'pushes per second', unit: 'push/s', of: (r) => r.pushesPerS },
        { metric: 'deliveries per second', unit: 'msg/s', of: (r) => r.deliveriesPerS },
        { metric: 'deliveries missing', unit: 'msg', of: (r) => r.missing },
        { metric: 'latency p99', unit: 'ms', of: (r) => r.latency.p99, ratio: true },
        { metric: 'server CPU per 1M deliveries', unit: 's', of: (r) => r.cpuPer1M, ratio: true },
        { metric: 'Redis CPU per 1M deliveries', unit: 's', of: (r) => r.redisCpuPer1M },
      ]);
      all[bench] = eachOutcome(runs, summary);
    }
    details.manyChannels = all;
  }
}
