/**
 * Abuse: `/healthz` latency while clients keep sending the largest bodies the push API must
 * refuse. The issue's three: a single push of ~4 MB whose data is 330,000 keys, a body nested
 * 2,000 deep, a gzip body that inflates to the same ~4 MB and then fails its CRC; sent together
 * (the target: /healthz under 50 ms throughout). Then each alone, with two extras: a gzip bomb
 * (64 MiB of data in ~64 KB) and 19,000 keys of 200 bytes (keys inside `data` are not counted by
 * the pre-parse scan, so this one is refused only after JSON.parse). The prober runs in a worker
 * thread, so the senders in this process cannot delay it. Server CPU per refusal is read from
 * /metrics: unlike latency, it does not grow with other processes on the same cores.
 */
import { Agent } from 'node:http';
import { loadavg } from 'node:os';
import { Worker } from 'node:worker_threads';
import { gzipSync } from 'node:zlib';
import {
  API_KEY,
  details,
  httpRequest,
  metrics,
  pct,
  record,
  settledMemory,
  sleep,
  startNode,
  stop,
  type BenchNode,
} from './support.js';

export interface AbuseOptions {
  /** How long the bodies keep coming. */
  durationS: number;
}

const BENCH = 'abuse';
const MAX_BODY_BYTES = 4 * 2 ** 20;
// Two senders: while one body is being refused, the next is already on its way.
const SENDERS = 2;

/** The bodies, each with the status it must be refused with. */
function bodies(): Array<{
  kind: string;
  body: Buffer;
  headers: Record<string, string>;
  want: number;
  /** One of the issue's three bodies (sent together in the mixed phase); else an extra. */
  issue: boolean;
}> {
  const head = '{"channel":"bench:abuse","event":"abuse","data":';
  const keys: string[] = [];
  for (let k = 0; k < 330_000; k++) keys.push(`"k${k}":1`);
  const wide = Buffer.from(`${head}{${keys.join(',')}}}`);
  if (wide.length > MAX_BODY_BYTES) throw new Error('the 330,000-key body is over the body limit');
  // Keys inside `data` are not counted by the pre-parse scan: fewer, longer keys (just under the
  // body limit) are parsed before the data's size refuses them.
  const long: string[] = [];
  for (let k = 0; k < 19_000; k++) long.push(`"${String(k).padStart(200, 'k')}":1`);
  const longKeys = Buffer.from(`${head}{${long.join(',')}}}`);
  if (longKeys.length > MAX_BODY_BYTES) throw new Error('the long-key body is over the body limit');
  const deep = Buffer.from(`${head}${'['.repeat(2000)}${']'.repeat(2000)}}`);
  const corrupt = gzipSync(wide);
  // The CRC in the trailer no longer matches: all 4 MB inflate, then the stream fails.
  corrupt[corrupt.length - 8] = corrupt[corrupt.length - 8]! ^ 0xff;
  const bomb = gzipSync(Buffer.from(`${head}"${'a'.repeat(64 * 2 ** 20)}"}`), { level: 9 });
  const gzip = { 'content-encoding': 'gzip' };
  return [
    { kind: '330,000 keys', body: wide, headers: {}, want: 413, issue: true },
    { kind: 'nested 2,000 deep', body: deep, headers: {}, want: 422, issue: true },
    { kind: 'corrupt gzip', body: corrupt, headers: gzip, want: 400, issue: true },
    { kind: 'gzip bomb', body: bomb, headers: gzip, want: 413, issue: false },
    { kind: '19,000 keys of 200 bytes', body: longKeys, headers: {}, want: 413, issue: false },
  ];
}

// Runs in a worker thread (plain CommonJS): GET /healthz one after another, every 10 ms, on one
// keep-alive connection, until told to stop; answers with the latencies.
const PROBER = `
const { parentPort, workerData } = require('node:worker_threads');
const http = require('node:http');
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
let running = true;
const latencies = [];
let failures = 0;
parentPort.on('message', (m) => { if (m === 'stop') running = false; });
const once = () => new Promise((resolve) => {
  const t = performance.now();
  const req = http.get(workerData.url + '/healthz', { agent }, (res) => {
    res.resume();
    res.on('end', () => resolve({ ms: performance.now() - t, ok: res.statusCode === 200 }));
  });
  req.on('error', () => resolve({ ms: performance.now() - t, ok: false }));
});
(async () => {
  while (running) {
    const r = await once();
    latencies.push(r.ms);
    if (!r.ok) failures++;
    await new Promise((r) => setTimeout(r, 10));
  }
  agent.destroy();
  parentPort.postMessage({ latencies, failures });
})();
`;

/** Probes /healthz from a worker thread while `during` runs. */
async function probeWhile(
  url: string,
  during: () => Promise<void>,
): Promise<{ latencies: number[]; failures: number }> {
  const worker = new Worker(PROBER, { eval: true, workerData: { url } });
  const answer = new Promise<{ latencies: number[]; failures: number }>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  try {
    await during();
  } finally {
    worker.postMessage('stop');
  }
  const result = await answer;
  await worker.terminate();
  return result;
}

type Case = ReturnType<typeof bodies>[number];

/** One phase: the senders send `cases` for `seconds` while /healthz is probed. */
interface Phase {
  healthz: { latencies: number[]; failures: number };
  times: Map<string, number[]>;
  unexpected: Map<string, string[]>;
  /** The server's own event-loop delay, worst while the phase ran. */
  loopDelayMs: number;
  /** Server CPU time (user + system) the phase cost, in ms: unlike latency, not inflated by
   * other processes on the same cores. */
  cpuMs: number;
}

async function phase(
  node: BenchNode,
  agent: Agent,
  cases: Case[],
  seconds: number,
): Promise<Phase> {
  const times = new Map<string, number[]>(cases.map((c) => [c.kind, []]));
  const unexpected = new Map<string, string[]>(cases.map((c) => [c.kind, []]));
  // prom-client's event-loop delay histogram starts over at every scrape.
  const cpuBefore = (await metrics(node.url)).get('process_cpu_seconds_total') ?? NaN;
  const healthz = await probeWhile(node.url, async () => {
    const until = Date.now() + seconds * 1000;
    await Promise.all(
      [...Array(SENDERS).keys()].map(async (sender) => {
        for (let i = sender; Date.now() < until; i++) {
          const c = cases[i % cases.length]!;
          const started = performance.now();
          let what: string;
          try {
            const res = await httpRequest(`${node.url}/api/push`, {
              method: 'POST',
              agent,
              headers: {
                authorization: `Bearer ${API_KEY}`,
                'content-type': 'application/json',
                'content-length': c.body.length,
                ...c.headers,
              },
              body: c.body,
            });
            what = `${res.status} ${res.body.slice(0, 120)}`;
            if (res.status === c.want) {
              times.get(c.kind)!.push(performance.now() - started);
              continue;
            }
          } catch (err) {
            what = String(err);
          }
          unexpected.get(c.kind)!.push(what);
        }
      }),
    );
  });
  const after = await metrics(node.url);
  const loopDelayMs = (after.get('nodejs_eventloop_lag_max_seconds') ?? NaN) * 1000;
  const cpuMs = ((after.get('process_cpu_seconds_total') ?? NaN) - cpuBefore) * 1000;
  return { healthz, times, unexpected, loopDelayMs, cpuMs };
}

export async function abuse(opts: AbuseOptions): Promise<void> {
  const cases = bodies();
  const node = await startNode(
    { LOG_LEVEL: 'warn', PUSHCAST_MAX_BODY_BYTES: String(MAX_BODY_BYTES) },
    { gcOnSignal: true },
  );
  const agent = new Agent({ keepAlive: true, maxSockets: SENDERS });
  const load: number[] = [loadavg()[0]!];
  try {
    const before = await settledMemory(node, 500);
    const idle = await probeWhile(node.url, () => sleep(3000));
    // The issue's three bodies mixed, then each kind alone (which refusal holds the event loop).
    const mixed = await phase(
      node,
      agent,
      cases.filter((c) => c.issue),
      opts.durationS,
    );
    const alone = new Map<string, Phase>();
    for (const c of cases) alone.set(c.kind, await phase(node, agent, [c], opts.durationS / 2));
    const memory = await settledMemory(node, 1000);
    load.push(loadavg()[0]!);

    const healthz = (label: string, r: { latencies: number[]; failures: number }): void => {
      record(BENCH, `/healthz ${label} p50`, pct(r.latencies, 50), 'ms');
      record(BENCH, `/healthz ${label} p99`, pct(r.latencies, 99), 'ms');
      record(BENCH, `/healthz ${label} max`, Math.max(...r.latencies), 'ms');
    };
    const slow = (r: { latencies: number[]; failures: number }): number =>
      r.latencies.filter((ms) => ms >= 50).length + r.failures;
    healthz('idle', idle);
    healthz('during refusals', mixed.healthz);
    record(
      BENCH,
      '/healthz over 50 ms (or failed) during refusals',
      slow(mixed.healthz),
      `of ${mixed.healthz.latencies.length}`,
    );
    record(BENCH, 'server event-loop delay max during refusals', mixed.loopDelayMs, 'ms');
    for (const c of cases.filter((k) => k.issue)) {
      const t = mixed.times.get(c.kind)!;
      record(BENCH, `mixed: ${c.kind} refusal p50`, pct(t, 50), 'ms');
      record(BENCH, `mixed: ${c.kind} refusal max`, Math.max(...t), 'ms');
    }
    for (const c of cases) {
      const p = alone.get(c.kind)!;
      const t = p.times.get(c.kind)!;
      const size =
        c.body.length >= 2 ** 20
          ? `${(c.body.length / 2 ** 20).toFixed(2)} MiB`
          : `${(c.body.length / 1024).toFixed(1)} KiB`;
      const label = `${c.kind} (${size}${c.issue ? '' : ', extra'})`;
      record(BENCH, `${label}: refused ${c.want}`, t.length, 'requests');
      record(BENCH, `${label}: refusal p50`, pct(t, 50), 'ms');
      record(BENCH, `${label}: refusal p99`, pct(t, 99), 'ms');
      record(BENCH, `${label}: server CPU per refusal`, p.cpuMs / Math.max(1, t.length), 'ms');
      record(BENCH, `${label}: /healthz p99 meanwhile`, pct(p.healthz.latencies, 99), 'ms');
      record(BENCH, `${label}: /healthz max meanwhile`, Math.max(...p.healthz.latencies), 'ms');
      record(BENCH, `${label}: event-loop delay max`, p.loopDelayMs, 'ms');
      const other = p.unexpected.get(c.kind)!.length + (mixed.unexpected.get(c.kind)?.length ?? 0);
      record(BENCH, `${label}: other answers`, other, 'count');
    }
    record(BENCH, 'server RSS before', before.rssMiB, 'MiB');
    record(BENCH, 'server RSS after', memory.rssMiB, 'MiB');
    record(BENCH, 'server heap before', before.heapMiB, 'MiB');
    record(BENCH, 'server heap after', memory.heapMiB, 'MiB');
    // Others' processes on the same cores show up in every latency above.
    record(BENCH, 'machine load average (1 min) at start', load[0]!, 'procs');
    record(BENCH, 'machine load average (1 min) at end', load[1]!, 'procs');
    details.abuse = {
      durationS: opts.durationS,
      senders: SENDERS,
      loadAverage: load,
      mixed: {
        refusals: Object.fromEntries(
          [...mixed.times].map(([k, t]) => [
            k,
            { count: t.length, p50: pct(t, 50), p99: pct(t, 99), max: Math.max(...t) },
          ]),
        ),
      },
      unexpected: Object.fromEntries(
        cases.map((c) => [
          c.kind,
          [
            ...(mixed.unexpected.get(c.kind) ?? []),
            ...alone.get(c.kind)!.unexpected.get(c.kind)!,
          ].slice(0, 5),
        ]),
      ),
      serverLogged: node.logged,
    };
  } finally {
    agent.destroy();
    await stop(node.child);
  }
}
