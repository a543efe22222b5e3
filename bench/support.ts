/**
 * What the benchmarks share: server processes (started and stopped by PID), the push request,
 * /metrics reads, tokens, percentiles and the result rows.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { Agent, request } from 'node:http';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { SignJWT } from 'jose';

export { sleep };

export const API_KEY = 'bench-api-key-0123456789abcdef';
export const SECRET = 'bench-jwt-secret-0123456789abcdef-0123456789';

/** One line of the result table. */
export interface Row {
  bench: string;
  metric: string;
  value: number;
  unit: string;
}
export const rows: Row[] = [];
export const record = (bench: string, metric: string, value: number, unit: string): void => {
  rows.push({ bench, metric, value: Math.round(value * 100) / 100, unit });
};
/** Scenario details that do not fit a row (lost pushes, memory series): go into the JSON line. */
export const details: Record<string, unknown> = {};

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

// Child processes still running (servers, load workers, nginx): SIGKILLed by PID if the benchmark
// exits without stopping them (an interrupted run exits through process.exit, so the exit hooks
// here and in test/support/redis.ts run).
const live = new Set<ChildProcess>();
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, () => {
    console.error(`bench: ${signal}, stopping`);
    process.exit(130);
  });
process.on('exit', () => {
  for (const child of live) kill(child);
});

/** Registers a child this process started, to be SIGKILLed if the benchmark exits first. */
export function own<C extends ChildProcess>(child: C): C {
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

/** SIGKILL to our own child, if it still runs. */
export function kill(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(child.pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

/** A started pushcast node. */
export interface BenchNode {
  url: string;
  port: number;
  pid: number;
  child: ChildProcess;
  /** Log lines at warn (40) or above, by level, and the last few of them. */
  logged: { warn: number; error: number; tail: string[] };
}

/**
 * Where the benchmarks' server build goes: `tsc -p tsconfig.build.json`, the build `npm start` and
 * the Docker image run, into a directory of its own (`npm run build` may be writing dist/ at the
 * same time, in the test suite). At the repository's root, like dist/, so that the build finds
 * node_modules and package.json where it expects them.
 */
export const SERVER_BUILD_DIR = '.bench-build';

let serverBuild: Promise<void> | undefined;

/**
 * Compiles the server once per benchmark process. Benchmarks measure what production runs: tsx's
 * on-the-fly transform wraps every function with a naming helper and costs 10-15% of the API's
 * CPU per push.
 */
export function buildServer(): Promise<void> {
  serverBuild ??= new Promise<void>((resolve, reject) => {
    const tsc = spawn(
      process.execPath,
      [
        'node_modules/typescript/bin/tsc',
        '-p',
        'tsconfig.build.json',
        '--outDir',
        SERVER_BUILD_DIR,
        '--declaration',
        'false',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    own(tsc);
    let out = '';
    tsc.stdout.on('data', (c: Buffer) => (out += c.toString()));
    tsc.stderr.on('data', (c: Buffer) => (out += c.toString()));
    tsc.once('error', reject);
    tsc.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`server build failed (${code}): ${out}`)),
    );
  });
  return serverBuild;
}

/**
 * BENCH_NODE_ARGS: extra flags for every server process a benchmark starts, pushcast's and the
 * baselines' (`--cpu-prof --cpu-prof-dir=/tmp/prof` to profile them: flags NODE_OPTIONS refuses).
 */
export const nodeArgs = (): string[] =>
  (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');

/**
 * Starts the server build (`node .bench-build/main.js`, see {@link buildServer}) on a free
 * loopback port and waits until `/readyz` answers 200 (so any LOG_LEVEL works). Output is read
 * line by line; only warnings and errors are kept.
 */
export async function startNode(
  env: Record<string, string> = {},
  options: { gcOnSignal?: boolean } = {},
): Promise<BenchNode> {
  await buildServer();
  const port = await freePort();
  // With gcOnSignal, SIGUSR2 runs a full GC in the node (see gc-on-signal.mjs and collectGarbage).
  const preload = options.gcOnSignal ? ['--expose-gc', '--import', './bench/gc-on-signal.mjs'] : [];
  const child = spawn(
    process.execPath,
    [...nodeArgs(), ...preload, `${SERVER_BUILD_DIR}/main.js`],
    {
      env: {
        ...process.env,
        PORT: String(port),
        HOST: '127.0.0.1',
        NODE_ENV: 'test',
        LOG_LEVEL: 'info',
        PUSHCAST_API_KEYS: API_KEY,
        PUSHCAST_JWT_SECRET: SECRET,
        PUSHCAST_CONFIG: 'bench/config.json',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  own(child);
  const logged = { warn: 0, error: 0, tail: [] as string[] };
  const early: string[] = [];
  const onLine = (line: string): void => {
    if (early.length < 50) early.push(line);
    const level = /"level":(\d+)/.exec(line)?.[1];
    // Lines that are not pino JSON (a crash trace on stderr) count as errors.
    const n = level === undefined ? (line.trim() === '' ? 0 : 50) : Number(level);
    if (n < 40) return;
    if (n >= 50) logged.error += 1;
    else logged.warn += 1;
    logged.tail.push(line.slice(0, 500));
    if (logged.tail.length > 20) logged.tail.shift();
  };
  createInterface({ input: child.stdout }).on('line', onLine);
  createInterface({ input: child.stderr }).on('line', onLine);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`node exited ${child.exitCode}: ${early.join('\n').slice(-1000)}`);
    const ok = await fetch(`${url}/readyz`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) {
      await stop(child);
      throw new Error(`node not ready: ${early.join('\n').slice(-1000)}`);
    }
    await sleep(100);
  }
  return { url, port, pid: child.pid ?? -1, child, logged };
}

/** SIGTERM to our own child, SIGKILL if it has not exited within `graceMs`. */
export async function stop(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await Promise.race([exited, sleep(graceMs)]);
  kill(child);
}

// node:http with keep-alive: fetch's own overhead would make the benchmark measure the client.
export const agent = new Agent({ keepAlive: true, maxSockets: 64 });

/** An HTTP answer: status, headers and body text. */
export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTP request over loopback; rejects on a network error. */
export function httpRequest(
  url: string,
  options: {
    method?: string;
    headers?: Record<string, string | number>;
    body?: string | Buffer;
    agent?: Agent;
    /** No answer within this long: the request is dropped and the promise rejects. */
    timeoutMs?: number;
  } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: options.method ?? 'GET', agent: options.agent ?? agent, headers: options.headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.setTimeout(options.timeoutMs ?? 30_000, () =>
      req.destroy(new Error(`no answer within ${options.timeoutMs ?? 30_000} ms`)),
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** POST /api/push with the bench key; resolves with the status only (the body is not read). */
export function push(url: string, channel: string, data: unknown): Promise<number> {
  const body = JSON.stringify({ channel, event: 'bench', data });
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}/api/push`,
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

export const pct = (values: number[], p: number): number => {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};

/** The unlabelled samples of a node's /metrics, by name. */
export async function metrics(url: string): Promise<Map<string, number>> {
  const text = (await httpRequest(`${url}/metrics`)).body;
  const found = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*) (\S+)$/.exec(line);
    if (m) found.set(m[1]!, Number(m[2]));
  }
  return found;
}

export async function metric(url: string, name: string): Promise<number> {
  return (await metrics(url)).get(name) ?? NaN;
}

/** RSS and V8 heap in use of a node, in MiB, from prom-client's default metrics. */
export async function memoryOf(url: string): Promise<{ rssMiB: number; heapMiB: number }> {
  const m = await metrics(url);
  return {
    rssMiB: (m.get('process_resident_memory_bytes') ?? NaN) / 2 ** 20,
    heapMiB: (m.get('nodejs_heap_size_used_bytes') ?? NaN) / 2 ** 20,
  };
}

/**
 * Memory after a quiet spell of `ms` and a full garbage collection (a node started with
 * `gcOnSignal`): what the node holds, not what it has yet to collect.
 */
export async function settledMemory(
  node: BenchNode,
  ms: number,
): Promise<{ rssMiB: number; heapMiB: number }> {
  await sleep(ms);
  process.kill(node.pid, 'SIGUSR2');
  await sleep(500);
  return memoryOf(node.url);
}

/** A socket token signed with the bench secret. */
export function token(
  sub: string,
  channels: string[],
  options: { secret?: string; exp?: string | number } = {},
): Promise<string> {
  return new SignJWT({ channels })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(options.exp ?? '1h')
    .sign(new TextEncoder().encode(options.secret ?? SECRET));
}
