/**
 * `idle-memory`: 8,000 connections, each joined to a channel of its own, then left idle. The
 * server's resident memory and V8 heap per connection, how fast the connections were opened and
 * joined (200 at a time per load worker), and the server CPU each connect and join cost. Runs
 * first on a freshly started server.
 *
 * Memory is read idle (after a full GC) three times: before, with half the connections open and
 * with all of them. Per connection over the whole run (all minus before, over all) includes what
 * a node pays once when connections arrive, whatever their number: above all the young generation
 * V8 grows for a burst of connects and keeps until the node has been idle for longer than these
 * readings wait (BENCHMARKS.md, log 30). Per added connection (all minus half, over the second
 * half) leaves that out, both readings coming a few seconds after a burst alike: what one more
 * connection costs a node that already holds some.
 */
import { details, pct, sleep } from '../support.js';
import { addWindows, CpuWindow, type WindowCpu } from './cpu-window.js';
import { addCounts } from './load-client.js';
import type { SubscribeResult } from './load-messages.js';
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
  rssAddedKiB: number;
  heapAddedKiB: number;
  rssBeforeMiB: number;
  rssHalfMiB: number;
  rssAfterMiB: number;
  heapBeforeMiB: number;
  heapHalfMiB: number;
  heapAfterMiB: number;
  connectPerS: number;
  connectP50: number;
  connectP99: number;
  cpuMsPerConnect: number;
  redisCpuMsPerConnect: number | undefined;
  /** Cores of the machine busy while connecting (of 2 here). */
  machineBusyCores: number;
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
    const first = await this.connect(cell, 0, this.connections / 2);
    const half = await settledMemory(cell.target);
    const second = await this.connect(cell, this.connections / 2, this.connections);
    const after = await settledMemory(cell.target);
    const n = first.joined.connected + second.joined.connected;
    const added = second.joined.connected;
    const timings = [...first.joined.timings, ...second.joined.timings];
    const wallS = first.joined.wallS + second.joined.wallS;
    const cpu = addWindows(first.cpu, second.cpu);
    this.outcomes.set(cell, {
      connected: n,
      failures: addCounts({ ...first.joined.errors }, second.joined.errors),
      rssKiB: (after.rss - before.rss) / n / 1024,
      heapKiB: (after.heapUsed - before.heapUsed) / n / 1024,
      rssAddedKiB: (after.rss - half.rss) / added / 1024,
      heapAddedKiB: (after.heapUsed - half.heapUsed) / added / 1024,
      rssBeforeMiB: before.rss / 2 ** 20,
      rssHalfMiB: half.rss / 2 ** 20,
      rssAfterMiB: after.rss / 2 ** 20,
      heapBeforeMiB: before.heapUsed / 2 ** 20,
      heapHalfMiB: half.heapUsed / 2 ** 20,
      heapAfterMiB: after.heapUsed / 2 ** 20,
      connectPerS: n / wallS,
      connectP50: pct(timings, 50),
      connectP99: pct(timings, 99),
      cpuMsPerConnect: (cpu.nodesCpuS / n) * 1000,
      redisCpuMsPerConnect: cpu.redisCpuS === undefined ? undefined : (cpu.redisCpuS / n) * 1000,
      machineBusyCores: cpu.machineBusyS / cpu.spanS,
    });
  }

  /** Opens and joins subscribers `from` to `to` - 1, with the server CPU it took. */
  private async connect(
    cell: Cell,
    from: number,
    to: number,
  ): Promise<{ joined: SubscribeResult; cpu: WindowCpu }> {
    const cpu = await CpuWindow.open(cell.target, cell.redis);
    // `bench:idle:<n>`: at most 15 characters (never 20, see fanout.ts).
    const joined = await cell.client.subscribe(cell.target, from, to, {
      prefix: 'bench:idle:',
      per: 1,
    });
    const window = await cpu.close();
    await sleep(1000);
    return { joined, cpu: window };
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
          metric: 'RSS per added connection',
          unit: 'KiB',
          of: (r) => r.rssAddedKiB,
          ratio: true,
        },
        {
          metric: 'heap per added connection',
          unit: 'KiB',
          of: (r) => r.heapAddedKiB,
          ratio: true,
        },
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
