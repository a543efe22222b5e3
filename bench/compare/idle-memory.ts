/**
 * `idle-memory`: 8,000 connections, each joined to a channel of its own, then left idle. The
 * server's resident memory and V8 heap per connection (after minus before, each after a full GC),
 * how fast the connections were opened and joined (200 at a time per load worker), and the server
 * CPU each connect and join cost. Runs first on a freshly started server.
 */
import { details, pct, sleep } from '../support.js';
import { CpuWindow } from './cpu-window.js';
import {
  Outcomes,
  topologyLabel,
  type Cell,
  type CompareOptions,
  type Comparison,
} from './matrix.js';
import { recordSideBySide } from './side-by-side.js';
import { collectGarbage, memoryOf, type Target } from './targets.js';

const SETTLE_MS = 3000;

interface IdleRun {
  connected: number;
  failures: Record<string, number>;
  rssKiB: number;
  heapKiB: number;
  rssBeforeMiB: number;
  rssAfterMiB: number;
  connectPerS: number;
  connectP50: number;
  connectP99: number;
  cpuMsPerConnect: number;
  redisCpuMsPerConnect: number | undefined;
}

/**
 * Every node's memory together once idle: a full GC, three seconds for the freed pages to go back
 * to the system (V8 and malloc return them in the background, not at once), and another GC.
 */
async function settledMemory(target: Target): Promise<{ rss: number; heapUsed: number }> {
  await collectGarbage(target);
  await sleep(SETTLE_MS);
  await collectGarbage(target);
  const all = await Promise.all(target.nodes.map((n) => memoryOf(target, n)));
  return {
    rss: all.reduce((a, m) => a + m.rss, 0),
    heapUsed: all.reduce((a, m) => a + m.heapUsed, 0),
  };
}

export class IdleMemory implements Comparison {
  readonly name = 'idle-memory';
  readonly gc = true;
  private readonly outcomes = new Outcomes<IdleRun>();
  private readonly connections: number;

  constructor(options: CompareOptions) {
    this.connections = options.quick ? 1000 : 8000;
  }

  async run(cell: Cell): Promise<void> {
    await sleep(500);
    const before = await settledMemory(cell.target);
    const cpu = await CpuWindow.open(cell.target, cell.redis);
    // `bench:idle:<n>`: at most 15 characters (never 20, see fanout.ts).
    const connected = await cell.client.subscribe(cell.target, 0, this.connections, {
      prefix: 'bench:idle:',
      per: 1,
    });
    const window = await cpu.close();
    await sleep(1000);
    const after = await settledMemory(cell.target);
    const n = connected.connected;
    this.outcomes.set(cell, {
      connected: n,
      failures: connected.errors,
      rssKiB: (after.rss - before.rss) / n / 1024,
      heapKiB: (after.heapUsed - before.heapUsed) / n / 1024,
      rssBeforeMiB: before.rss / 2 ** 20,
      rssAfterMiB: after.rss / 2 ** 20,
      connectPerS: n / connected.wallS,
      connectP50: pct(connected.timings, 50),
      connectP99: pct(connected.timings, 99),
      cpuMsPerConnect: (window.nodesCpuS / n) * 1000,
      redisCpuMsPerConnect:
        window.redisCpuS === undefined ? undefined : (window.redisCpuS / n) * 1000,
    });
  }

  record(): void {
    const all: Record<string, unknown> = {};
    for (const [nodes, runs] of this.outcomes.entries()) {
      const bench = `idle-memory ${this.connections}, ${topologyLabel(nodes)}`;
      recordSideBySide(bench, runs, [
        { metric: 'connections joined', unit: 'sockets', of: (r) => r.connected },
        { metric: 'RSS per connection', unit: 'KiB', of: (r) => r.rssKiB, ratio: true },
        { metric: 'heap per connection', unit: 'KiB', of: (r) => r.heapKiB, ratio: true },
        {
          metric: 'connect+join per second',
          unit: 'conn/s',
          of: (r) => r.connectPerS,
          ratio: true,
        },
        { metric: 'connect+join p99', unit: 'ms', of: (r) => r.connectP99 },
        {
          metric: 'server CPU per connect+join',
          unit: 'ms',
          of: (r) => r.cpuMsPerConnect,
          ratio: true,
        },
        { metric: 'Redis CPU per connect+join', unit: 'ms', of: (r) => r.redisCpuMsPerConnect },
      ]);
      all[bench] = runs;
    }
    details.idleMemory = all;
  }
}
