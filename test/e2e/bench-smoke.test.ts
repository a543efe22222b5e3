import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

/** One row of the benchmark's output (bench/support.ts). */
interface Row {
  bench: string;
  metric: string;
  value: number;
  unit: string;
}

const dir = mkdtempSync(join(tmpdir(), 'pushcast-bench-smoke-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `npm run bench -- <args>` with its results written to `dir`; resolves with exit code and output. */
function bench(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts', ...args], {
      env: { ...process.env, BENCH_RESULTS_DIR: dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    // The bench bounds itself; this bounds the test should that ever fail.
    const timer = setTimeout(() => child.kill('SIGKILL'), 150_000);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

// A smoke run of the comparison benchmark (BENCHMARKS.md): it starts pushcast and both baselines,
// drives them through its load workers, and reports side by side. Figures are not judged here
// (targets are read from full runs, never from timed assertions); what is checked is that the
// benchmark still runs end to end and that every server delivered what it answered.
describe('npm run bench (smoke)', () => {
  it('runs fanout and api against pushcast and both baselines, nothing lost, one JSON line written', async () => {
    const run = await bench(['--quick', 'fanout', 'api', '--topologies', '1', '--sizes', '100']);
    expect(run.code, run.stderr.slice(-2000)).toBe(0);
    const line = run.stdout.trim().split('\n').at(-1)!;
    const result = JSON.parse(line) as { scenarios: string[]; results: Row[] };
    expect(result.scenarios).toEqual(['fanout', 'api']);
    // The same line is appended to bench.jsonl, for runs to be compared over time.
    expect(readFileSync(join(dir, 'bench.jsonl'), 'utf8').trim()).toBe(line);

    const value = (bench: string, metric: string, target: string): number | undefined =>
      result.results.find((r) => r.bench === bench && r.metric === `${metric} [${target}]`)?.value;
    for (const target of ['pushcast', 'socketio', 'ws']) {
      expect(value('fanout 100, 1 node', 'deliveries expected', target)).toBeGreaterThan(0);
      expect(value('fanout 100, 1 node', 'deliveries missing', target)).toBe(0);
      expect(value('fanout 100, 1 node', 'server CPU per 1M deliveries', target)).toBeGreaterThan(
        0,
      );
      expect(value('api, 1 node', 'pushes not answered 200', target)).toBe(0);
      expect(value('api, 1 node', 'deliveries missing', target)).toBe(0);
      expect(value('api, 1 node', 'single pushes per second', target)).toBeGreaterThan(0);
    }
    // Ratios against both baselines, for the headline figures.
    for (const baseline of ['socketio', 'ws'])
      expect(
        value('api, 1 node', 'single pushes per second', `pushcast/${baseline}`),
      ).toBeGreaterThan(0);
  }, 180_000);

  it('reads idle memory before, at half and at all the connections: per connection and per added one', async () => {
    const run = await bench([
      '--quick',
      'idle-memory',
      '--topologies',
      '1',
      '--targets',
      'pushcast',
    ]);
    expect(run.code, run.stderr.slice(-2000)).toBe(0);
    const result = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as {
      results: Row[];
      details: { idleMemory: Record<string, { pushcast: Record<string, number> }> };
    };
    const value = (metric: string): number | undefined =>
      result.results.find(
        (r) => r.bench === 'idle-memory 1000, 1 node' && r.metric === `${metric} [pushcast]`,
      )?.value;
    expect(value('connections joined')).toBe(1000);
    // Every connection holds something on the heap, in either reading.
    expect(value('heap per connection')).toBeGreaterThan(0);
    expect(value('heap per added connection')).toBeGreaterThan(0);
    expect(Number.isFinite(value('RSS per added connection'))).toBe(true);
    // The three readings behind the figures, in the order they were taken.
    const run1 = result.details.idleMemory['idle-memory 1000, 1 node']!.pushcast;
    expect(run1.heapBeforeMiB).toBeLessThan(run1.heapHalfMiB!);
    expect(run1.heapHalfMiB).toBeLessThan(run1.heapAfterMiB!);
  }, 180_000);
});
