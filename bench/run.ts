/**
 * pushcast benchmarks: `npm run bench`. Loopback only, bounded in count and time. Prints a table
 * and the same numbers as JSON (last line). Targets are read from the numbers here, never from
 * timed assertions in tests.
 *
 *   fan-out   one push to a channel with N sockets: time until the last socket has it
 *   api       push API throughput and latency with concurrent publishers (memory, Redis)
 *   memory    server heap and RSS per connected socket (server in its own process)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { Agent, request } from 'node:http';
import { createServer } from 'node:net';
import { io, type Socket } from 'socket.io-client';
import { Redis } from 'ioredis';
import { SignJWT } from 'jose';
import { startRedis } from '../test/support/redis.js';

const API_KEY = 'bench-api-key-0123456789abcdef';
const SECRET = 'bench-jwt-secret-0123456789abcdef-0123456789';
const SOCKETS = Number(process.env.BENCH_SOCKETS ?? 2000);
const PUSHES = Number(process.env.BENCH_PUSHES ?? 3000);

interface Row {
  bench: string;
  metric: string;
  value: number;
  unit: string;
}
const rows: Row[] = [];
const record = (bench: string, metric: string, value: number, unit: string): void => {
  rows.push({ bench, metric, value: Math.round(value * 100) / 100, unit });
};

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

function startProcess(
  cmd: string,
  args: string[],
  env: Record<string, string>,
  ready: RegExp,
): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const onData = (b: Buffer): void => {
      out += b.toString();
      if (ready.test(out)) {
        child.stdout.off('data', onData);
        resolve(child);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    child.once('exit', (code) => reject(new Error(`${cmd} exited ${code}: ${out.slice(-500)}`)));
    setTimeout(() => reject(new Error(`${cmd} not ready: ${out.slice(-500)}`)), 20_000).unref();
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
  if (child.exitCode === null) child.kill('SIGKILL');
}

async function startNode(
  env: Record<string, string> = {},
): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const child = await startProcess(
    process.execPath,
    ['--import', 'tsx', 'src/main.ts'],
    {
      PORT: String(port),
      HOST: '127.0.0.1',
      NODE_ENV: 'test',
      LOG_LEVEL: 'info',
      PUSHCAST_API_KEYS: API_KEY,
      PUSHCAST_JWT_SECRET: SECRET,
      PUSHCAST_CONFIG: 'bench/config.json',
      ...env,
    },
    /pushcast ready/,
  );
  return { url: `http://127.0.0.1:${port}`, child };
}

async function connectMany(
  url: string,
  channel: string,
  n: number,
  onMsg: (i: number) => void,
): Promise<Socket[]> {
  const token = await new SignJWT({ channels: [channel] })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('bench')
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(SECRET));
  const sockets: Socket[] = [];
  for (let start = 0; start < n; start += 200) {
    const batch = await Promise.all(
      [...Array(Math.min(200, n - start)).keys()].map(
        (k) =>
          new Promise<Socket>((resolve, reject) => {
            const s = io(url, {
              auth: { token },
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

// node:http with keep-alive: fetch's own overhead would make the benchmark measure the client.
const agent = new Agent({ keepAlive: true, maxSockets: 64 });

function push(url: string, channel: string, data: unknown): Promise<number> {
  const body = JSON.stringify({ channel, event: 'bench', data });
  const target = new URL('/api/push', url);
  return new Promise((resolve, reject) => {
    const req = request(
      target,
      {
        method: 'POST',
        agent,
        headers: {
          authorization: `Bearer ${API_KEY}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const pct = (values: number[], p: number): number => {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return Number(line?.split(' ')[1] ?? NaN);
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

async function main(): Promise<void> {
  await fanoutAndMemory();
  await apiThroughput('memory, 1 node', {});
  const redis = await startRedis();
  try {
    await apiThroughput('redis, 2 nodes', { REDIS_URL: redis.url }, 2);
    await backpressure(redis.url);
  } finally {
    await redis.stop();
  }
  const width = Math.max(...rows.map((r) => `${r.bench}  ${r.metric}`.length));
  console.log(`\n${'benchmark'.padEnd(width)}  value`);
  for (const r of rows)
    console.log(`${`${r.bench}  ${r.metric}`.padEnd(width)}  ${r.value} ${r.unit}`);
  console.log(
    JSON.stringify({ node: process.version, sockets: SOCKETS, pushes: PUSHES, results: rows }),
  );
}

await main();
agent.destroy();
