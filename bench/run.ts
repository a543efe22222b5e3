/**
 * pushcast benchmarks: `npm run bench`. Loopback only, bounded in count and time. Prints a table
 * and the same numbers as JSON (last line, also appended to bench/results/bench.jsonl). Targets
 * are read from the numbers here, never from timed assertions in tests.
 *
 * Side by side (bench/compare/): each scenario on one node and on two nodes sharing one Redis,
 * against pushcast and two baselines started the same way: a hand-written Express + Socket.IO
 * server (bench/baselines/socketio.js) and a bare `ws` server writing one pre-built frame per push
 * (bench/baselines/ws.js, the ceiling). A target is started once per topology and the scenarios
 * run on it in turn (idle-memory first), reusing its subscribers. The load runs in worker
 * processes of its own, one per core (--workers); server CPU is read from /proc, Redis CPU from
 * its INFO. Rows per target, plus `pushcast/socketio` and `pushcast/ws` ratio rows for the
 * headline figures. A run is flagged client-limited when a load worker used 90% of a core, and
 * machine-limited when the machine had no core left though the server had none to itself; a
 * warning says when processes outside the benchmark took CPU during a window.
 *
 *   fanout           one channel, N subscribers (--sizes), a fixed rate of ~100-byte pushes:
 *                    deliveries expected and missing, server CPU per 1M deliveries, latency
 *                    from publish to receive (p50, p99)
 *   saturate         one channel, 2,000 subscribers, pushes as fast as they are answered (8
 *                    publishers): deliveries/s, server CPU share and per 1M deliveries
 *   many-channels    2,000 channels x 5 subscribers, pushes to random channels at a fixed rate:
 *                    pushes/s, deliveries/s, p99, CPU per 1M deliveries
 *   api              POST /api/push and /api/push/batch (100 a request), 16 keep-alive
 *                    connections: pushes/s, request latency, server CPU per push
 *   idle-memory      8,000 connections, one channel each: RSS and heap per connection after a
 *                    full GC, connect+join per second and its server CPU
 *   reconnect-storm  5,000 SDK clients of one of three nodes behind nginx; the node is SIGKILLed:
 *                    time until every client is back and rejoined with `since`, rejoins per
 *                    second, messages missed, the survivors' peak CPU and RSS; the same storm
 *                    against the hand-written server (plain socket.io-client, no history)
 *                    (bench/compare/reconnect-storm.ts; 300 clients with --quick)
 *
 * pushcast alone:
 *
 *   backpressure     Redis stalled while publishers outrun it: the in-flight bound holds
 *   soak             two nodes on Redis for a while: publishing, joining, reconnecting, bad
 *                    input; pushes lost and duplicated, sockets lost, memory at start and end
 *                    (soak.ts)
 *   abuse            /healthz latency while the largest bodies that must be refused keep coming,
 *                    and how long each refusal takes (abuse.ts)
 *   scaling          on a Redis Cluster (3 masters): Redis CPU per push on one shard as nodes
 *                    and channels grow (and classic pub/sub beside it); one node's push and
 *                    delivery throughput on the cluster (scaling.ts; the figures of SCALING.md)
 *
 * `npm run bench` runs them all (the soak for 60 s) in under ten minutes on two cores;
 * `npm run bench -- soak abuse` runs the ones named. Comparison options: `--targets
 * pushcast,socketio,ws`, `--topologies 1,2`, `--sizes 500,2000,8000` (fanout), `--workers <n>`
 * (load processes; default: the cores available), `--quick` (smaller sizes, windows of a second or
 * less: a smoke run). Other options: `--duration <s>` (soak; 180 when the soak runs alone), `--subscribers <n>`,
 * `--rate <pushes/s>`, `--abuse-duration <s>`; or BENCH_SOAK_S, BENCH_SOAK_SUBSCRIBERS,
 * BENCH_SOAK_RATE, BENCH_ABUSE_S. BENCH_RESULTS_DIR: where bench.jsonl goes (default bench/results).
 *
 * Sized for a per-process limit of 20,000 file descriptors: at most 10,000 subscriber sockets are
 * open at once (many-channels), held by one server process (or split over two) and spread over
 * the load workers.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { startRedis } from '../test/support/redis.js';
import { abuse } from './abuse.js';
import { Api } from './compare/api.js';
import { Fanout } from './compare/fanout.js';
import { IdleMemory } from './compare/idle-memory.js';
import { LoadClient } from './compare/load-client.js';
import { machineBusySeconds } from './compare/proc.js';
import { ManyChannels } from './compare/many-channels.js';
import { runMatrix, type CompareOptions, type Comparison } from './compare/matrix.js';
import { reconnectStorm } from './compare/reconnect-storm.js';
import { Saturate } from './compare/saturate.js';
import { TARGET_KINDS, type TargetKind } from './compare/targets.js';
import { scaling } from './scaling.js';
import { soak } from './soak.js';
import { agent, details, metric, push, record, rows, sleep, startNode, stop } from './support.js';

/**
 * A publisher that outruns Redis: Redis stalls (CLIENT PAUSE) while 50 publishers keep pushing
 * into a node whose in-flight bound is 20, three times over. The bound must hold (the rest are
 * answered 503 at once), and the heap after each round must not climb with the rounds (the
 * numbers move with V8's garbage collection, not with the backlog).
 */
async function backpressure(redisUrl: string): Promise<void> {
  const MAX_INFLIGHT = 20;
  const node = await startNode({
    REDIS_URL: redisUrl,
    PUSHCAST_MAX_INFLIGHT: String(MAX_INFLIGHT),
  });
  const admin = new Redis(redisUrl);
  try {
    record('backpressure', 'in-flight bound', MAX_INFLIGHT, 'pushes');
    record(
      'backpressure',
      'heap before',
      (await metric(node.url, 'nodejs_heap_size_used_bytes')) / 2 ** 20,
      'MiB',
    );
    let peakInflight = 0;
    const statuses = new Map<number, number>();
    for (let round = 1; round <= 3; round++) {
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          peakInflight = Math.max(peakInflight, await metric(node.url, 'pushcast_inflight_pushes'));
          await new Promise((r) => setTimeout(r, 50));
        }
      })();
      await admin.call('CLIENT', 'PAUSE', '2000', 'WRITE');
      const until = Date.now() + 2000;
      await Promise.all(
        [...Array(50).keys()].map(async () => {
          let i = 0;
          while (Date.now() < until) {
            const status = await push(node.url, 'bench:bp', { i: i++ });
            statuses.set(status, (statuses.get(status) ?? 0) + 1);
          }
        }),
      );
      sampling = false;
      await sampler;
      await new Promise((r) => setTimeout(r, 1000));
      const heap = await metric(node.url, 'nodejs_heap_size_used_bytes');
      record('backpressure', `heap after stall ${round}`, heap / 2 ** 20, 'MiB');
    }
    record('backpressure', 'in-flight peak', peakInflight, 'pushes');
    record('backpressure', '503 answers while Redis stalls', statuses.get(503) ?? 0, 'count');
    const others = [...statuses].filter(([status]) => status !== 503);
    record(
      'backpressure',
      'other answers',
      others.reduce((a, [, n]) => a + n, 0),
      'count',
    );
  } finally {
    admin.disconnect();
    await stop(node.child);
  }
}

const COMPARISONS = [
  'fanout',
  'saturate',
  'many-channels',
  'api',
  'idle-memory',
  'reconnect-storm',
] as const;
const SCENARIOS = [...COMPARISONS, 'backpressure', 'soak', 'abuse', 'scaling'] as const;
type Scenario = (typeof SCENARIOS)[number];

const NUMERIC = ['duration', 'subscribers', 'rate', 'abuse-duration', 'workers'];
const LISTS = ['targets', 'topologies', 'sizes'];

/** What the command line asked for. */
interface Args {
  scenarios: Scenario[];
  options: Map<string, number>;
  compare: CompareOptions;
  workers: number;
}

/**
 * `[scenario ...] [--targets a,b] [--topologies 1,2] [--sizes n,...] [--workers n] [--quick]
 * [--duration s] [--subscribers n] [--rate n] [--abuse-duration s]`.
 */
function parseArgs(argv: string[]): Args {
  const scenarios: Scenario[] = [];
  const options = new Map<string, number>();
  const lists = new Map<string, string[]>();
  let quick = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--quick') quick = true;
    else if (arg.startsWith('--')) {
      const [name, inline] = arg.slice(2).split('=', 2) as [string, string | undefined];
      const raw = inline ?? argv[++i] ?? '';
      if (LISTS.includes(name))
        lists.set(
          name,
          raw.split(',').filter((v) => v !== ''),
        );
      else if (NUMERIC.includes(name)) {
        const value = Number(raw);
        if (!Number.isFinite(value) || value <= 0)
          throw new Error(`--${name} needs a positive number`);
        options.set(name, value);
      } else throw new Error(`unknown option --${name}`);
    } else if ((SCENARIOS as readonly string[]).includes(arg)) scenarios.push(arg as Scenario);
    else throw new Error(`unknown scenario "${arg}"; one of: ${SCENARIOS.join(', ')}`);
  }
  const targets = (lists.get('targets') ?? [...TARGET_KINDS]) as TargetKind[];
  for (const t of targets)
    if (!(TARGET_KINDS as readonly string[]).includes(t))
      throw new Error(`unknown target "${t}"; one of: ${TARGET_KINDS.join(', ')}`);
  const topologies = (lists.get('topologies') ?? ['1', '2']).map(Number);
  if (!topologies.every((n): n is 1 | 2 => n === 1 || n === 2))
    throw new Error('--topologies takes 1 and/or 2 (nodes)');
  const sizes = (lists.get('sizes') ?? (quick ? ['100', '500'] : ['500', '2000', '8000'])).map(
    Number,
  );
  // 10,000 sockets at most per process (the fd limit is 20,000): see the comment at the top.
  if (!sizes.every((n) => Number.isInteger(n) && n > 0 && n <= 10_000))
    throw new Error('--sizes takes subscriber counts from 1 to 10000');
  return {
    scenarios: scenarios.length > 0 ? scenarios : [...SCENARIOS],
    options,
    compare: { targets, topologies, sizes, quick },
    workers: options.get('workers') ?? availableParallelism(),
  };
}

const envNumber = (name: string): number | undefined =>
  process.env[name] === undefined ? undefined : Number(process.env[name]);

async function main(): Promise<void> {
  const { scenarios, options, compare, workers } = parseArgs(process.argv.slice(2));
  const runs = (s: Scenario): boolean => scenarios.includes(s);
  const comparisons = COMPARISONS.filter(runs);
  const soakS =
    options.get('duration') ?? envNumber('BENCH_SOAK_S') ?? (scenarios.length === 1 ? 180 : 60);
  const abuseS = options.get('abuse-duration') ?? envNumber('BENCH_ABUSE_S') ?? 10;
  // Bounded whatever happens: a run that hangs is ended (its servers, Redis and load with it).
  const budgetS =
    300 +
    comparisons.length * (compare.quick ? 60 : 150) +
    (runs('soak') ? 2 * soakS : 0) +
    (runs('abuse') ? 5 * abuseS : 0) +
    (runs('scaling') ? 300 : 0) +
    (runs('reconnect-storm') ? 300 : 0);
  setTimeout(() => {
    console.error(`bench: still running after ${budgetS} s; giving up`);
    process.exit(1);
  }, budgetS * 1000).unref();

  // Other work on the machine disturbs every figure here: how busy it was before we started (over
  // one second) and the load average at both ends go into the details; each comparison window
  // also says what processes outside the benchmark took.
  const loadAtStart = loadavg()[0];
  const busy0 = machineBusySeconds();
  await sleep(1000);
  const busyBefore = machineBusySeconds() - busy0;
  if (busyBefore > 0.25)
    console.warn(`bench: the machine was already ${busyBefore.toFixed(2)} cores busy`);
  // How long each scenario took, in s (comparison scenarios: summed over targets and topologies;
  // `servers`: starting and stopping them): in the JSON details.
  const durations: Record<string, number> = {};
  const timed = async (name: string, run: () => Promise<void>): Promise<void> => {
    const t0 = performance.now();
    await run();
    durations[name] = Math.round((performance.now() - t0) / 100) / 10;
    console.log(`bench: ${name} took ${durations[name]} s`);
  };

  // On one server start per target and topology, in this order: idle-memory first, while the
  // server is fresh (its memory is measured from there).
  const matrix: Comparison[] = [
    ...(runs('idle-memory') ? [new IdleMemory(compare)] : []),
    ...(runs('fanout') ? [new Fanout(compare)] : []),
    ...(runs('saturate') ? [new Saturate(compare)] : []),
    ...(runs('many-channels') ? [new ManyChannels(compare)] : []),
    ...(runs('api') ? [new Api(compare)] : []),
  ];
  if (matrix.length > 0) {
    const t0 = performance.now();
    const client = await LoadClient.start(workers);
    try {
      Object.assign(durations, await runMatrix(compare, client, matrix));
    } finally {
      await client.stop();
    }
    durations.comparison = Math.round((performance.now() - t0) / 100) / 10;
    console.log(`bench: comparison took ${durations.comparison} s`, durations);
  }
  if (runs('reconnect-storm'))
    await timed('reconnect-storm', () =>
      reconnectStorm({
        clients: compare.quick ? 300 : 5000,
        // `--targets`: the storm's own (bare ws has no reconnecting client), both by default.
        targets: compare.targets.filter((t) => t === 'pushcast' || t === 'socketio'),
      }),
    );
  if (runs('backpressure') || runs('soak')) {
    const redis = await startRedis();
    try {
      if (runs('backpressure')) await timed('backpressure', () => backpressure(redis.url));
      if (runs('soak'))
        await timed('soak', () =>
          soak(redis.url, {
            // A few minutes when the soak runs alone; a minute within the full run.
            durationS: soakS,
            subscribers: options.get('subscribers') ?? envNumber('BENCH_SOAK_SUBSCRIBERS') ?? 300,
            rate: options.get('rate') ?? envNumber('BENCH_SOAK_RATE') ?? 50,
          }),
        );
    } finally {
      await redis.stop();
    }
  }
  if (runs('abuse')) await timed('abuse', () => abuse({ durationS: abuseS }));
  if (runs('scaling')) await timed('scaling', scaling);
  details.durationsS = durations;
  details.machine = {
    coresBusyBefore: Math.round(busyBefore * 100) / 100,
    loadAverage: { start: loadAtStart, end: loadavg()[0] },
  };

  const width = Math.max(...rows.map((r) => `${r.bench}  ${r.metric}`.length));
  console.log(`\n${'benchmark'.padEnd(width)}  value`);
  for (const r of rows)
    console.log(`${`${r.bench}  ${r.metric}`.padEnd(width)}  ${r.value} ${r.unit}`);
  const line = JSON.stringify({
    date: new Date().toISOString(),
    node: process.version,
    scenarios,
    ...(comparisons.length > 0 ? { compare: { ...compare, workers } } : {}),
    results: rows,
    ...(Object.keys(details).length > 0 ? { details } : {}),
  });
  console.log(line);
  // One line per run, so runs can be compared over time (BENCH_RESULTS_DIR: elsewhere, as the
  // smoke test does).
  const dir =
    process.env.BENCH_RESULTS_DIR ?? fileURLToPath(new URL('./results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  appendFileSync(join(dir, 'bench.jsonl'), `${line}\n`);
}

await main();
agent.destroy();
