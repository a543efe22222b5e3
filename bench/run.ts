/**
 * pushcast benchmarks: `npm run bench`. Loopback only, bounded in count and time. Prints a table
 * and the same numbers as JSON (last line, also appended to bench/results/bench.jsonl). Targets
 * are read from the numbers here, never from timed assertions in tests.
 *
 *   fanout        one push to a channel with N sockets: time until the last socket has it;
 *                 server heap and RSS per connected socket (server in its own process)
 *   api           push API throughput and latency with concurrent publishers (memory, Redis)
 *   backpressure  Redis stalled while publishers outrun it: the in-flight bound holds
 *   soak          two nodes on Redis for a while: publishing, joining, reconnecting, bad input;
 *                 pushes lost and duplicated, sockets lost, memory at start and end (soak.ts)
 *   abuse         /healthz latency while the largest bodies that must be refused keep coming,
 *                 and how long each refusal takes (abuse.ts)
 *   scaling       on a Redis Cluster (3 masters): Redis CPU per push on one shard as nodes and
 *                 channels grow (and classic pub/sub beside it); one node's push and delivery
 *                 throughput on the cluster (scaling.ts; the figures of SCALING.md)
 *
 * `npm run bench` runs them all (the soak for 60 s); `npm run bench -- soak abuse` runs the ones
 * named. Options: `--duration <s>` (soak; 180 when the soak runs alone), `--subscribers <n>`,
 * `--rate <pushes/s>`, `--abuse-duration <s>`; or BENCH_SOAK_S, BENCH_SOAK_SUBSCRIBERS,
 * BENCH_SOAK_RATE, BENCH_ABUSE_S.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { io, type Socket } from 'socket.io-client';
import { Redis } from 'ioredis';
import { startRedis } from '../test/support/redis.js';
import { abuse } from './abuse.js';
import { scaling } from './scaling.js';
import { soak } from './soak.js';
import {
  agent,
  details,
  metric,
  pct,
  push,
  record,
  rows,
  startNode,
  stop,
  token,
} from './support.js';

const SOCKETS = Number(process.env.BENCH_SOCKETS ?? 2000);
const PUSHES = Number(process.env.BENCH_PUSHES ?? 3000);

async function connectMany(
  url: string,
  channel: string,
  n: number,
  onMsg: (i: number) => void,
): Promise<Socket[]> {
  const sockets: Socket[] = [];
  for (let start = 0; start < n; start += 200) {
    // One user per socket: a node admits only so many sockets per user (maxConnectionsPerUser).
    const jwts = await Promise.all(
      [...Array(Math.min(200, n - start)).keys()].map((k) =>
        token(`bench-${start + k}`, [channel]),
      ),
    );
    const batch = await Promise.all(
      jwts.map(
        (jwt, k) =>
          new Promise<Socket>((resolve, reject) => {
            const s = io(url, {
              auth: { token: jwt },
              transports: ['websocket'],
              reconnection: false,
              forceNew: true,
            });
            s.on('msg', () => onMsg(start + k));
            s.once('connect', () => s.emit('join', { channel }, () => resolve(s)));
            s.once('connect_error', reject);
          }),
      ),
    );
    sockets.push(...batch);
  }
  return sockets;
}

async function fanoutAndMemory(): Promise<void> {
  const node = await startNode();
  try {
    const heap0 = await metric(node.url, 'nodejs_heap_size_used_bytes');
    const rss0 = await metric(node.url, 'process_resident_memory_bytes');
    let received = 0;
    let waiter: (() => void) | undefined;
    const sockets = await connectMany(node.url, 'bench:fanout', SOCKETS, () => {
      received += 1;
      if (received % SOCKETS === 0) waiter?.();
    });
    await new Promise((r) => setTimeout(r, 500));
    const heap1 = await metric(node.url, 'nodejs_heap_size_used_bytes');
    const rss1 = await metric(node.url, 'process_resident_memory_bytes');
    record('memory', 'heap per socket', (heap1 - heap0) / SOCKETS / 1024, 'KiB');
    record('memory', 'RSS per socket', (rss1 - rss0) / SOCKETS / 1024, 'KiB');

    const times: number[] = [];
    const rounds = 30;
    const t0 = performance.now();
    for (let i = 0; i < rounds; i++) {
      const done = new Promise<void>((r) => (waiter = r));
      const start = performance.now();
      await push(node.url, 'bench:fanout', { i, text: 'x'.repeat(200) });
      await done;
      times.push(performance.now() - start);
    }
    const total = performance.now() - t0;
    record('fan-out', `sockets per push`, SOCKETS, 'sockets');
    record('fan-out', 'push to last socket p50', pct(times, 50), 'ms');
    record('fan-out', 'push to last socket p99', pct(times, 99), 'ms');
    record('fan-out', 'deliveries per second', (rounds * SOCKETS) / (total / 1000), 'msg/s');
    for (const s of sockets) s.close();
  } finally {
    await stop(node.child);
  }
}

async function apiThroughput(label: string, env: Record<string, string>, nodes = 1): Promise<void> {
  const started = await Promise.all([...Array(nodes).keys()].map(() => startNode(env)));
  try {
    let received = 0;
    const sockets = await connectMany(started[0]!.url, 'bench:api', 10, () => (received += 1));
    const latencies: number[] = [];
    let next = 0;
    let failures = 0;
    const t0 = performance.now();
    await Promise.all(
      [...Array(50).keys()].map(async (w) => {
        while (next < PUSHES) {
          const i = next++;
          const s = performance.now();
          const status = await push(started[(w + i) % nodes]!.url, 'bench:api', { i });
          if (status !== 200) failures += 1;
          latencies.push(performance.now() - s);
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    const deadline = Date.now() + 10_000;
    while (received < (PUSHES - failures) * 10 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    record(`api (${label})`, 'pushes per second', PUSHES / seconds, 'req/s');
    record(`api (${label})`, 'latency p50', pct(latencies, 50), 'ms');
    record(`api (${label})`, 'latency p99', pct(latencies, 99), 'ms');
    record(`api (${label})`, 'non-200 answers', failures, 'count');
    record(`api (${label})`, 'deliveries missing', (PUSHES - failures) * 10 - received, 'count');
    for (const s of sockets) s.close();
  } finally {
    await Promise.all(started.map((n) => stop(n.child)));
  }
}

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

const SCENARIOS = ['fanout', 'api', 'backpressure', 'soak', 'abuse', 'scaling'] as const;
type Scenario = (typeof SCENARIOS)[number];

/** `[scenario ...] [--duration s] [--subscribers n] [--rate n] [--abuse-duration s]`. */
function parseArgs(argv: string[]): { scenarios: Scenario[]; options: Map<string, number> } {
  const scenarios: Scenario[] = [];
  const options = new Map<string, number>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg.startsWith('--')) {
      const [name, inline] = arg.slice(2).split('=', 2) as [string, string | undefined];
      const value = Number(inline ?? argv[++i]);
      if (!['duration', 'subscribers', 'rate', 'abuse-duration'].includes(name))
        throw new Error(`unknown option --${name}`);
      if (!Number.isFinite(value) || value <= 0)
        throw new Error(`--${name} needs a positive number`);
      options.set(name, value);
    } else if ((SCENARIOS as readonly string[]).includes(arg)) scenarios.push(arg as Scenario);
    else throw new Error(`unknown scenario "${arg}"; one of: ${SCENARIOS.join(', ')}`);
  }
  return { scenarios: scenarios.length > 0 ? scenarios : [...SCENARIOS], options };
}

const envNumber = (name: string): number | undefined =>
  process.env[name] === undefined ? undefined : Number(process.env[name]);

async function main(): Promise<void> {
  const { scenarios, options } = parseArgs(process.argv.slice(2));
  const runs = (s: Scenario): boolean => scenarios.includes(s);
  const soakS =
    options.get('duration') ?? envNumber('BENCH_SOAK_S') ?? (scenarios.length === 1 ? 180 : 60);
  const abuseS = options.get('abuse-duration') ?? envNumber('BENCH_ABUSE_S') ?? 10;
  // Bounded whatever happens: a run that hangs is ended (its servers and Redis with it).
  const budgetS = 600 + (runs('soak') ? 2 * soakS : 0) + (runs('abuse') ? 5 * abuseS : 0);
  setTimeout(() => {
    console.error(`bench: still running after ${budgetS} s; giving up`);
    process.exit(1);
  }, budgetS * 1000).unref();
  if (runs('fanout')) await fanoutAndMemory();
  if (runs('api')) await apiThroughput('memory, 1 node', {});
  if (runs('api') || runs('backpressure') || runs('soak')) {
    const redis = await startRedis();
    try {
      if (runs('api')) await apiThroughput('redis, 2 nodes', { REDIS_URL: redis.url }, 2);
      if (runs('backpressure')) await backpressure(redis.url);
      if (runs('soak'))
        await soak(redis.url, {
          // A few minutes when the soak runs alone; a minute within the full run.
          durationS: soakS,
          subscribers: options.get('subscribers') ?? envNumber('BENCH_SOAK_SUBSCRIBERS') ?? 300,
          rate: options.get('rate') ?? envNumber('BENCH_SOAK_RATE') ?? 50,
        });
    } finally {
      await redis.stop();
    }
  }
  if (runs('abuse')) await abuse({ durationS: abuseS });
  if (runs('scaling')) await scaling();

  const width = Math.max(...rows.map((r) => `${r.bench}  ${r.metric}`.length));
  console.log(`\n${'benchmark'.padEnd(width)}  value`);
  for (const r of rows)
    console.log(`${`${r.bench}  ${r.metric}`.padEnd(width)}  ${r.value} ${r.unit}`);
  const line = JSON.stringify({
    date: new Date().toISOString(),
    node: process.version,
    scenarios,
    sockets: SOCKETS,
    pushes: PUSHES,
    results: rows,
    ...(Object.keys(details).length > 0 ? { details } : {}),
  });
  console.log(line);
  // One line per run, so runs can be compared over time.
  const dir = new URL('./results/', import.meta.url);
  mkdirSync(dir, { recursive: true });
  appendFileSync(new URL('bench.jsonl', dir), `${line}\n`);
}

await main();
agent.destroy();
