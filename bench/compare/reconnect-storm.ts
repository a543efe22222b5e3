/**
 * reconnect-storm: every client of a node that dies comes back through the load balancer to the
 * nodes that are left, and rejoins its channel with `since`.
 *
 * Three nodes on one redis-server behind nginx; all clients (child processes, storm-clients.ts)
 * are on node A when A is SIGKILLed, while a publisher keeps pushing to every channel through
 * node B. Measured: the time from the kill until every client is connected again and has rejoined,
 * rejoins per second, the peak CPU and RSS of the two survivors (and of the client workers, so a
 * client-limited run shows), and, once publishing has stopped and deliveries are quiet, whether
 * every client got every push of its channel exactly once and in order.
 *
 * Targets: pushcast (the SDK, which rejoins with `since` and replays what it missed) and the
 * hand-written Socket.IO baseline (bench/baselines/socketio.js: no history, so what was pushed
 * while a client was away is lost to it; its clients are plain socket.io-client with default
 * reconnection, joining again on `connect`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { startNginx } from '../../test/support/nginx.js';
import { startRedis, type RedisFixture } from '../../test/support/redis.js';
import {
  API_KEY,
  details,
  freePort,
  httpRequest,
  kill,
  metric,
  nodeArgs,
  own,
  record,
  sleep,
  startNode,
  stop,
} from '../support.js';
import type { Phase, WorkerAnswer, WorkerReport, WorkerRequest } from './storm-clients.js';

/** Which server the storm runs against. */
export type StormTarget = 'pushcast' | 'socketio';

/** Options of {@link reconnectStorm}. */
export interface ReconnectStormOptions {
  /** Clients on the node that is killed (5,000 for the figure; a few hundred to smoke). */
  clients: number;
  /** Default: both. The baseline is skipped (with a note in the details) when its file is absent. */
  targets?: StormTarget[];
  /**
   * `raised` (default): pushcast's admission rate raised so that the storm measures reconnection,
   * not the limiter; `default`: pushcast's shipped limits, to see what a storm does against them.
   */
  limits?: 'raised' | 'default';
  /** nginx with the test fixture's fail-fast upstream settings (see {@link startBalancer}). */
  failFastBalancer?: boolean;
}

const CHANNELS = 50;
/** Pushes per second over all channels, round robin: 2 per channel per second. */
const PUBLISH_RATE = 100;
/** Publishing before the kill, so every client has an offset to resume from. */
const WARMUP_MS = 2000;
/** Publishing after the last client is back: live delivery on the survivors is checked too. */
const AFTER_MS = 1000;
const SAMPLE_MS = 100;
const CONNECT_BUDGET_MS = 60_000;
const STORM_BUDGET_MS = 30_000;
const QUIET_BUDGET_MS = 10_000;

const WORKER = fileURLToPath(new URL('./storm-clients.ts', import.meta.url));
const BASELINE = fileURLToPath(new URL('../baselines/socketio.js', import.meta.url));

/**
 * The one limit raised for pushcast: its admission rate (`connectRatePerSecond`, default 1,000
 * per node). Two survivors admit 2,000 handshakes a second, so 5,000 clients coming back within
 * the SDK's first backoff window (0-500 ms) would mostly be refused `connect_rate_limited` and
 * the storm would measure the limiter and the backoff, not reconnection; the initial 5,000 joins
 * onto one node would be throttled the same way. The other limits already fit: one `sub` per
 * client (maxConnectionsPerUser 100), 5,000 sockets against maxConnections 50,000, one join per
 * socket against 20 events/s, and a history of 100 per channel holds 50 s at 2 pushes/s.
 */
const RAISED_LIMITS: Record<string, string> = { PUSHCAST_CONNECT_RATE_PER_S: '100000' };

/** A server node of the storm, whichever kind. */
interface StormNode {
  url: string;
  port: number;
  pid: number;
  child: ChildProcess;
  /** pushcast only: warnings and errors it logged. */
  logged?: { warn: number; error: number; tail: string[] };
}

/** Starts one node of `kind` on the Redis at `redisUrl` and waits until it is ready. */
async function startStormNode(
  kind: StormTarget,
  redisUrl: string,
  env: Record<string, string>,
): Promise<StormNode> {
  if (kind === 'pushcast') return startNode({ REDIS_URL: redisUrl, ...env });
  const port = await freePort();
  const child = own(
    spawn(process.execPath, [...nodeArgs(), BASELINE], {
      env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', REDIS_URL: redisUrl },
      stdio: ['ignore', 'ignore', 'pipe'],
    }),
  );
  const stderr: string[] = [];
  child.stderr?.on('data', (c: Buffer) => {
    stderr.push(c.toString('utf8'));
    if (stderr.length > 20) stderr.shift();
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`baseline exited ${child.exitCode}: ${stderr.join('').slice(-1000)}`);
    const ok = await fetch(`${url}/healthz`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) {
      await stop(child, 3000);
      throw new Error(`baseline not ready: ${stderr.join('').slice(-1000)}`);
    }
    await sleep(100);
  }
  return { url, port, pid: child.pid ?? -1, child };
}

/**
 * nginx in front of the nodes: `primary` takes every connection while it is up, `backups` only
 * once it is down (nginx's `backup`), round robin between them: test/support/nginx.ts sized for
 * 5,000 clients (10,000 connections in nginx, client side and upstream side), with its listen
 * backlog raised so that a burst of thousands of handshakes is not slowed by SYN retransmits
 * (Linux drops SYNs past it, and a dropped SYN is retried after a second).
 *
 * Failover: the primary is marked down on its first refused connection (it is dead: SIGKILL).
 * The backups are never marked down by nginx (`max_fails=0`, ingress-nginx's default) and a
 * connect may take 5 s (ingress-nginx's default), so that a survivor whose accept queue
 * overflowed (a dropped SYN is retried after 1 s and 3 s) is waited for rather than taken out. With
 * `failFast` (the test fixture's settings: `max_fails=1 fail_timeout=2s` everywhere, 2 s connect
 * timeout), one slow connect takes a survivor out for 2 s and both out answers every handshake
 * 502 ("no live upstreams"): the storm then measures that breaker and the clients' growing
 * backoff more than the servers.
 */
async function startBalancer(
  primary: number,
  backups: number[],
  failFast: boolean,
): Promise<{
  url: string;
  pid: number;
  stop: () => Promise<void>;
  errors: () => { counts: Record<string, number>; tail: string[] };
}> {
  const nginx = await startNginx(
    [{ port: primary }, ...backups.map((port) => ({ port, backup: true, neverDown: !failFast }))],
    // 5,000 clients are 10,000 connections in nginx (client side and upstream side); the accept
    // queue as deep as the nodes' (PUSHCAST_LISTEN_BACKLOG).
    { workerConnections: 19_000, backlog: 4096, connectTimeoutS: failFast ? 2 : 5 },
  );
  /** What nginx logged at warn or above, by message (numbers and addresses blanked), and a tail. */
  const errors = (): { counts: Record<string, number>; tail: string[] } => {
    const lines = existsSync(nginx.errorLog)
      ? readFileSync(nginx.errorLog, 'utf8').split('\n').filter(Boolean)
      : [];
    const counts: Record<string, number> = {};
    for (const line of lines) {
      const what = line
        .replace(/^\S+ \S+ /, '')
        .replace(/, client: .*$/, '')
        .replace(/\d+/g, 'N');
      counts[what] = (counts[what] ?? 0) + 1;
    }
    return { counts, tail: lines.slice(-3) };
  };
  return { url: nginx.url, pid: nginx.pid, stop: () => nginx.stop(), errors };
}

type Ask = WorkerRequest extends infer R ? (R extends unknown ? Omit<R, 'id'> : never) : never;

/** A client worker process and its IPC requests. */
class ClientWorker {
  private nextId = 0;
  private readonly pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void }
  >();
  readonly child: ChildProcess;

  constructor() {
    this.child = own(
      spawn(process.execPath, ['--import', 'tsx', WORKER], {
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      }),
    );
    this.child.on('message', (answer: WorkerAnswer) => {
      const waiter = this.pending.get(answer.id);
      if (!waiter) return;
      this.pending.delete(answer.id);
      if (answer.ok) waiter.resolve(answer.result);
      else waiter.reject(new Error(`client worker: ${answer.error}`));
    });
    this.child.once('exit', (code, signal) => {
      for (const waiter of this.pending.values())
        waiter.reject(new Error(`client worker exited (${code ?? signal})`));
      this.pending.clear();
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  /** One request; rejects if unanswered within `timeoutMs`. */
  ask<T>(request: Ask, timeoutMs = 10_000): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`client worker: no answer to ${request.type} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.child.send({ ...request, id });
    });
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    await this.ask({ type: 'close' }, 3000).catch(() => undefined);
    await Promise.race([exited, sleep(3000)]);
    kill(this.child);
  }
}

/** No answer to a push within this long: its outcome is unknown (the seq becomes uncertain). */
const PUSH_TIMEOUT_MS = 5000;

/**
 * Pushes to every channel round robin at {@link PUBLISH_RATE}, `data: { seq }` numbered per
 * channel from 0, through one node's push API. A channel whose previous push is still unanswered
 * skips its turn (counted), so the seqs of a channel are accepted in order whatever the latency,
 * and a swamped node is not buried under a queue of pushes that would outlast the run.
 */
class Publisher {
  /** Per channel, the highest seq sent. */
  readonly last: number[] = Array<number>(CHANNELS).fill(-1);
  /** Per channel, seqs not answered 200 (may or may not have been published). */
  readonly uncertain: number[][] = Array.from({ length: CHANNELS }, () => []);
  readonly statuses = new Map<string, number>();
  /** Milliseconds from request to answer, of every push answered. */
  readonly latencies: number[] = [];
  skipped = 0;
  private readonly busy = new Set<number>();
  private readonly inFlight = new Set<Promise<void>>();
  private running = true;
  private readonly loop: Promise<void>;

  constructor(private readonly url: string) {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    const started = performance.now();
    for (let k = 0; this.running; k++) {
      const channel = k % CHANNELS;
      if (this.busy.has(channel)) this.skipped += 1;
      else this.send(channel, ++this.last[channel]!);
      const wait = started + ((k + 1) * 1000) / PUBLISH_RATE - performance.now();
      if (wait > 0) await sleep(wait);
    }
  }

  private send(channel: number, seq: number): void {
    this.busy.add(channel);
    const body = JSON.stringify({ channel: `storm:${channel}`, event: 'storm', data: { seq } });
    const sentAt = performance.now();
    const done = httpRequest(`${this.url}/api/push`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${API_KEY}`,
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
      },
      body,
      timeoutMs: PUSH_TIMEOUT_MS,
    }).then(
      (answer) => {
        this.latencies.push(performance.now() - sentAt);
        return String(answer.status);
      },
      (err: Error) => (/no answer/.test(err.message) ? 'timeout' : err.message.slice(0, 60)),
    );
    const settled = done.then((status) => {
      this.statuses.set(status, (this.statuses.get(status) ?? 0) + 1);
      if (status !== '200') this.uncertain[channel]!.push(seq);
      this.busy.delete(channel);
      this.inFlight.delete(settled);
    });
    this.inFlight.add(settled);
  }

  get sent(): number {
    return this.last.reduce((n, l) => n + l + 1, 0);
  }

  /** Stops sending and waits for the answers still due (at most {@link PUSH_TIMEOUT_MS}). */
  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    await Promise.all(this.inFlight);
  }
}

/** CPU (utime + stime, in clock ticks) and RSS of a process, from /proc; undefined once gone. */
function readProc(pid: number): { ticks: number; rssKiB: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
    return { ticks, rssKiB };
  } catch {
    return undefined;
  }
}

/** The first child of `pid` (nginx's worker, under the master we started), if any. */
function firstChild(pid: number): number | undefined {
  try {
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    const first = Number(children.split(' ')[0]);
    return Number.isInteger(first) && first > 0 ? first : undefined;
  } catch {
    return undefined;
  }
}

/** CPU share (1 = one core) and RSS of one process over a sampling run. */
interface ProcUsage {
  peakCpu: number;
  meanCpu: number;
  /** CPU time used over the whole run, in seconds. */
  cpuS: number;
  rssBeforeMiB: number;
  peakRssMiB: number;
}

// Linux reports CPU time in USER_HZ ticks, 100 a second on every mainstream architecture.
const TICKS_PER_S = 100;

/** Samples over which a CPU peak is taken: 500 ms. */
const PEAK_WINDOW = 5;

/**
 * Samples processes every {@link SAMPLE_MS}: CPU time and RSS. `stop()` gives each one's mean CPU
 * share, its peak over {@link PEAK_WINDOW} samples, and its peak RSS. The kernel hands out a
 * process's CPU time in lumps (it is apportioned from the scheduler's runtime when read), so a
 * single 100 ms interval can show several cores' worth; half a second evens that out.
 */
class ProcSampler {
  private readonly series = new Map<string, Array<{ ticks: number; at: number }>>();
  private readonly usage = new Map<string, ProcUsage>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly pids: Record<string, number>) {
    this.sample();
    this.timer = setInterval(() => this.sample(), SAMPLE_MS);
  }

  private sample(): void {
    const at = performance.now();
    for (const [name, pid] of Object.entries(this.pids)) {
      const now = readProc(pid);
      if (!now) continue;
      const series = this.series.get(name) ?? [];
      this.series.set(name, series);
      series.push({ ticks: now.ticks, at });
      const u = this.usage.get(name) ?? {
        peakCpu: 0,
        meanCpu: 0,
        cpuS: 0,
        rssBeforeMiB: now.rssKiB / 1024,
        peakRssMiB: 0,
      };
      this.usage.set(name, u);
      u.peakRssMiB = Math.max(u.peakRssMiB, now.rssKiB / 1024);
      const share = (from: { ticks: number; at: number }): number =>
        at > from.at ? (now.ticks - from.ticks) / TICKS_PER_S / ((at - from.at) / 1000) : 0;
      const first = series[0]!;
      u.cpuS = (now.ticks - first.ticks) / TICKS_PER_S;
      u.meanCpu = share(first);
      u.peakCpu = Math.max(u.peakCpu, share(series[Math.max(0, series.length - 1 - PEAK_WINDOW)]!));
    }
  }

  stop(): Record<string, ProcUsage> {
    clearInterval(this.timer);
    this.sample();
    return Object.fromEntries(this.usage);
  }
}

/**
 * SYNs the kernel dropped because a listener's accept queue was full (TcpExt ListenOverflows).
 * The counter is the network namespace's, so other work on the machine counts too; in a storm
 * it is the survivors' queues that overflow. A dropped SYN is retried by the client's kernel
 * after 1 s, then 3 s: a storm that overflows a backlog shows up as seconds of handshake.
 */
function listenOverflows(): number {
  try {
    const [names, values] = readFileSync('/proc/net/netstat', 'utf8').split('\n');
    const i = names?.split(' ').indexOf('ListenOverflows') ?? -1;
    return i > 0 ? Number(values?.split(' ')[i]) : NaN;
  } catch {
    return NaN;
  }
}

/**
 * The longest event-loop stall of a pushcast node since the last read, in ms; NaN if it does not
 * answer within 5 s (a node still swamped by the storm must not hold the benchmark up).
 */
async function loopLagMs(url: string): Promise<number> {
  const answer = await httpRequest(`${url}/metrics`, { timeoutMs: 5000 }).catch(() => undefined);
  const m = /^nodejs_eventloop_lag_max_seconds (\S+)$/m.exec(answer?.body ?? '');
  return m ? 1000 * Number(m[1]) : NaN;
}

/** Waits until `done()` or the deadline; true if done. */
async function waitFor(
  done: () => Promise<boolean>,
  deadline: number,
  everyMs = 50,
): Promise<boolean> {
  for (;;) {
    if (await done()) return true;
    if (Date.now() > deadline) return false;
    await sleep(everyMs);
  }
}

/** The busiest `windowMs` of sorted times, scaled to a second. */
function peakRate(sortedMs: number[], windowMs: number): number {
  let best = 0;
  for (let lo = 0, hi = 0; hi < sortedMs.length; hi++) {
    while (sortedMs[hi]! - sortedMs[lo]! >= windowMs) lo++;
    best = Math.max(best, hi - lo + 1);
  }
  return (best * 1000) / windowMs;
}

const pctOf = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

/** The storm against one kind of server. */
async function storm(kind: StormTarget, opts: ReconnectStormOptions): Promise<void> {
  const { clients } = opts;
  const limits = opts.limits ?? 'raised';
  const failFast = opts.failFastBalancer ?? false;
  const variant =
    (kind === 'pushcast' && limits === 'default' ? ', default limits' : '') +
    (failFast ? ', fail-fast nginx' : '');
  const bench = `reconnect-storm (${kind}, 3 nodes + Redis${variant})`;
  const info: Record<string, unknown> = {
    clients,
    channels: CHANNELS,
    publishRate: PUBLISH_RATE,
    balancer: failFast
      ? 'nginx, every upstream max_fails=1 fail_timeout=2s, connect timeout 2 s'
      : 'nginx, killed node max_fails=1 fail_timeout=2s, survivors max_fails=0, connect timeout 5 s',
  };
  details[bench] = info;
  const env = kind === 'pushcast' && limits === 'raised' ? RAISED_LIMITS : {};
  if (kind === 'pushcast') {
    info.serverEnv = env;
    // The SDK's schedule as shipped: it is what a storm against a real deployment looks like.
    info.backoff = 'SDK default (full jitter, baseMs 500, capMs 30000)';
  } else info.reconnection = 'socket.io-client default (1-5 s, randomization 0.5)';
  // Other work on the machine slows every process here alike: say how busy it was.
  info.loadAverageBefore = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const started = Date.now();

  let redis: RedisFixture | undefined;
  const nodes: StormNode[] = [];
  let balancer: Awaited<ReturnType<typeof startBalancer>> | undefined;
  const workers: ClientWorker[] = [];
  let publisher: Publisher | undefined;
  let sampler: ProcSampler | undefined;
  try {
    redis = await startRedis();
    const redisUrl = redis.url;
    const startedNodes = await Promise.allSettled(
      [0, 1, 2].map(() => startStormNode(kind, redisUrl, env)),
    );
    for (const s of startedNodes) if (s.status === 'fulfilled') nodes.push(s.value);
    const failed = startedNodes.find((s) => s.status === 'rejected');
    if (failed) throw failed.reason;
    const [a, b, c] = nodes as [StormNode, StormNode, StormNode];

    // A is nginx's only primary and B and C are `backup`: nginx sends nothing to a backup while
    // the primary is up, so every client lands on A; once A is dead, they spread over B and C.
    balancer = await startBalancer(a.port, [b.port, c.port], failFast);

    const workerCount = Math.max(1, Math.min(4, availableParallelism(), Math.ceil(clients / 500)));
    for (let i = 0; i < workerCount; i++) workers.push(new ClientWorker());
    const share = Math.ceil(clients / workerCount);
    const connectStarted = Date.now();
    const aBefore = readProc(a.pid);
    await Promise.all(
      workers.map((w, i) =>
        w.ask(
          {
            type: 'connect',
            kind,
            url: balancer!.url,
            first: i * share,
            count: Math.max(0, Math.min(share, clients - i * share)),
            channels: CHANNELS,
          },
          CONNECT_BUDGET_MS,
        ),
      ),
    );
    info.connectMs = Date.now() - connectStarted;
    const aAfter = readProc(a.pid);
    // What one connection and its first join cost a node, measured where nothing else runs on
    // it (the storm's rejoins add a replay and share the node with live fan-out).
    if (aBefore && aAfter)
      info.killedNodeCpuMsPerConnectAndJoin =
        Math.round((((aAfter.ticks - aBefore.ticks) * 1000) / TICKS_PER_S / clients) * 100) / 100;
    if (kind === 'pushcast') {
      const onA = await metric(a.url, 'pushcast_sockets_connected');
      info.socketsOnKilledNodeBefore = onA;
      if (onA !== clients)
        throw new Error(`${onA} of ${clients} clients on node A before the kill`);
    }

    publisher = new Publisher(b.url);
    // The survivors' CPU before the kill (B takes the pushes, both fan out): what the storm adds
    // is counted above it.
    const warmupFrom = { at: performance.now(), b: readProc(b.pid), c: readProc(c.pid) };
    await sleep(WARMUP_MS);
    const warmupS = (performance.now() - warmupFrom.at) / 1000;
    const preKillCpu = (pid: number, from: ReturnType<typeof readProc>): number =>
      ((readProc(pid)?.ticks ?? NaN) - (from?.ticks ?? NaN)) / TICKS_PER_S / warmupS;
    const preKill = { B: preKillCpu(b.pid, warmupFrom.b), C: preKillCpu(c.pid, warmupFrom.c) };

    const nginxWorker = firstChild(balancer.pid);
    sampler = new ProcSampler({
      B: b.pid,
      C: c.pid,
      redis: redis.pid,
      ...(nginxWorker ? { nginx: nginxWorker } : {}),
      ...Object.fromEntries(workers.map((w, i) => [`clients${i}`, w.pid])),
    });
    const aExited = new Promise((r) => a.child.once('exit', r));
    // Read once so that the survivors' event-loop histograms start now (each /metrics read
    // resets prom-client's), not at their start-up.
    if (kind === 'pushcast') await Promise.all([b, c].map((n) => loopLagMs(n.url)));
    const overflowsBefore = listenOverflows();
    const killedAt = Date.now();
    process.kill(a.pid, 'SIGKILL');
    await aExited;

    const allBack = await waitFor(async () => {
      const states = await Promise.all(
        workers.map((w) => w.ask<{ back: number }>({ type: 'progress', since: killedAt })),
      );
      return states.reduce((n, s) => n + s.back, 0) >= clients;
    }, killedAt + STORM_BUDGET_MS);
    const usage = sampler.stop();
    sampler = undefined;
    const stormMs = Date.now() - killedAt;
    const overflows = listenOverflows() - overflowsBefore;
    // The longest event-loop stall of each survivor during the storm.
    const lagMs =
      kind === 'pushcast' ? await Promise.all([b, c].map((n) => loopLagMs(n.url))) : undefined;

    await sleep(AFTER_MS);
    await publisher.stop();
    const sent = publisher.sent;
    // Quiet: the delivered count holds still for half a second (the deliveries still owed are
    // the last pushes' fan-out, a few hundred milliseconds at most).
    let delivered = -1;
    let still = 0;
    await waitFor(
      async () => {
        const counts = await Promise.all(workers.map((w) => w.ask<number>({ type: 'delivered' })));
        const total = counts.reduce((x, y) => x + y, 0);
        still = total === delivered ? still + 1 : 0;
        delivered = total;
        return still >= 5;
      },
      Date.now() + QUIET_BUDGET_MS,
      100,
    );

    const reports = await Promise.all(
      workers.map((w) =>
        w.ask<WorkerReport>(
          {
            type: 'report',
            since: killedAt,
            last: publisher!.last,
            uncertain: publisher!.uncertain,
          },
          30_000,
        ),
      ),
    );
    const sum = (f: (r: WorkerReport) => number): number => reports.reduce((n, r) => n + f(r), 0);
    const rejoin = reports.flatMap((r) => r.rejoinMs);
    // Back within the storm's budget; a client still coming back while deliveries settled is
    // counted as not back (its rejoin is in the details' `lateBack`).
    const back = rejoin.filter((ms) => ms >= 0 && ms <= stormMs).sort((x, y) => x - y);
    const lastBack = back.at(-1) ?? NaN;
    const onKilled = clients - sum((r) => r.neverDisconnected);
    const connectErrors: Record<string, number> = {};
    for (const r of reports)
      for (const [what, n] of Object.entries(r.connectErrors))
        connectErrors[what] = (connectErrors[what] ?? 0) + n;
    const survivors = [usage.B, usage.C].filter((u): u is ProcUsage => u !== undefined);
    const clientUsage = workers.map((_, i) => usage[`clients${i}`]).filter((u) => u !== undefined);
    const latencies = [...publisher.latencies].sort((x, y) => x - y);

    const row = (metric: string, value: number, unit: string): void =>
      record(bench, metric, value, unit);
    row('clients on the killed node', onKilled, 'clients');
    row(`clients back and rejoined within ${STORM_BUDGET_MS / 1000} s`, back.length, 'clients');
    row('kill to all back and rejoined', back.length === clients ? lastBack : NaN, 'ms');
    row('rejoin after kill p50', pctOf(back, 50), 'ms');
    row('rejoin after kill p99', pctOf(back, 99), 'ms');
    row('rejoins per second (all / time to last)', back.length / (lastBack / 1000), '1/s');
    row('rejoins per second (busiest 100 ms)', peakRate(back, 100), '1/s');
    row(
      'clients missing messages',
      sum((r) => r.clientsMissing),
      'clients',
    );
    // The loss that matters most: a client that came back and was not told (the SDK's onLost)
    // that its state may be stale.
    row(
      'clients back, missing messages, not told',
      sum((r) => r.clientsMissingUntold),
      'clients',
    );
    row(
      'messages missed',
      sum((r) => r.messagesMissing),
      'messages',
    );
    row(
      'clients with duplicates',
      sum((r) => r.clientsDuplicate),
      'clients',
    );
    row(
      'clients out of order',
      sum((r) => r.clientsOutOfOrder),
      'clients',
    );
    if (kind === 'pushcast')
      row(
        'rejoins not recovered (onLost)',
        sum((r) => r.recoveryFailed),
        'count',
      );
    row(
      'failed connection attempts',
      Object.values(connectErrors).reduce((x, y) => x + y, 0),
      'count',
    );
    row('listen queue overflows (SYNs dropped)', overflows, 'count');
    row(
      'survivor peak CPU (busiest node, 500 ms)',
      100 * Math.max(...survivors.map((u) => u.peakCpu)),
      '% core',
    );
    row(
      'survivor mean CPU during storm (busiest node)',
      100 * Math.max(...survivors.map((u) => u.meanCpu)),
      '% core',
    );
    row('survivor peak RSS (largest node)', Math.max(...survivors.map((u) => u.peakRssMiB)), 'MiB');
    // CPU the survivors spent during the storm beyond their pre-kill rate, per client back: the
    // cost of a rejoin (handshake, authentication, join, replay) plus the fan-out it adds.
    const extraCpuS = (['B', 'C'] as const).reduce(
      (n, name) => n + (usage[name]?.cpuS ?? NaN) - preKill[name] * (stormMs / 1000),
      0,
    );
    row('survivors CPU per rejoin (above pre-kill)', (1000 * extraCpuS) / back.length, 'ms');
    row(
      'client workers mean CPU during storm (sum)',
      100 * clientUsage.reduce((n, u) => n + u.meanCpu, 0),
      '% core',
    );
    row('push latency p99 (publisher, through a survivor)', pctOf(latencies, 99), 'ms');
    // Every process of the storm (survivors, Redis, nginx, the clients): the CPU the comeback
    // took, and how much of the machine that was. Near 100%, no server could bring the clients
    // back faster than that CPU divided by the cores.
    const allCpuS = Object.values(usage).reduce((n, u) => n + u.cpuS, 0);
    row('CPU of every process during the storm (sum)', allCpuS, 's');
    row(
      'machine busy during the storm (that CPU / cores)',
      (100 * allCpuS) / (availableParallelism() * (stormMs / 1000)),
      '%',
    );
    row(
      'fastest comeback that CPU allows here (CPU / cores)',
      (1000 * allCpuS) / availableParallelism(),
      'ms',
    );

    Object.assign(info, {
      allBack,
      stormMs,
      workers: workers.length,
      machineCores: availableParallelism(),
      pushesSent: sent,
      pushesSkipped: publisher.skipped,
      pushAnswers: Object.fromEntries(publisher.statuses),
      pushLatencyMs: {
        p50: pctOf(latencies, 50),
        p99: pctOf(latencies, 99),
        max: latencies.at(-1),
      },
      lateBack: rejoin.filter((ms) => ms > stormMs).length,
      delivered,
      replayedOnRejoin: sum((r) => r.replayed),
      firstNotRecoveredMs: Math.min(...reports.map((r) => r.firstLostMs ?? Infinity)),
      droppedAsDuplicateBySdk: sum((r) => r.droppedBySdk),
      connectErrors,
      maxFailedAttemptsInARow: Math.max(...reports.map((r) => r.maxAttempts)),
      usage: Object.fromEntries(
        Object.entries(usage).map(([name, u]) => [
          name,
          {
            peakCpuPct: Math.round(u.peakCpu * 100),
            meanCpuPct: Math.round(u.meanCpu * 100),
            cpuS: u.cpuS,
            rssBeforeMiB: Math.round(u.rssBeforeMiB),
            peakRssMiB: Math.round(u.peakRssMiB),
          },
        ]),
      ),
      firstBackMs: back[0],
      survivorsPreKillCpuPct: { B: Math.round(preKill.B * 100), C: Math.round(preKill.C * 100) },
      ...(lagMs ? { survivorMaxEventLoopLagMs: lagMs.map(Math.round) } : {}),
      // Where a comeback's time goes: p50 / p99 / max of each phase, in ms.
      phases: Object.fromEntries(
        (Object.keys(reports[0]?.phases ?? {}) as Phase[]).map((phase) => {
          const ms = reports.flatMap((r) => r.phases[phase]).sort((x, y) => x - y);
          return [phase, { p50: pctOf(ms, 50), p99: pctOf(ms, 99), max: ms.at(-1) }];
        }),
      ),
      examples: reports.flatMap((r) => r.examples).slice(0, 5),
    });
    if (kind === 'pushcast')
      info.survivorLogs = [b, c].map((n) => ({
        warn: n.logged?.warn,
        error: n.logged?.error,
        tail: n.logged?.tail.slice(-3),
      }));
  } finally {
    sampler?.stop();
    await publisher?.stop().catch(() => undefined);
    if (balancer) info.nginxErrors = balancer.errors();
    await Promise.all(workers.map((w) => w.close()));
    await balancer?.stop();
    await Promise.all(nodes.map((n) => stop(n.child)));
    await redis?.stop();
    info.scenarioMs = Date.now() - started;
  }
}

/**
 * The reconnect-storm benchmark: for each target, `clients` clients on a node that is killed,
 * coming back through nginx to the two survivors. Rows go to `record()`, the rest to `details`.
 */
export async function reconnectStorm(opts: ReconnectStormOptions): Promise<void> {
  const targets = opts.targets ?? ['pushcast', 'socketio'];
  for (const target of targets) {
    if (target === 'socketio' && !existsSync(BASELINE)) {
      details['reconnect-storm (socketio, 3 nodes + Redis)'] = {
        skipped: `no baseline at ${BASELINE}`,
      };
      continue;
    }
    await storm(target, opts);
  }
}
