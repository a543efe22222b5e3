/**
 * The benchmark's side of the load: forks the load workers (one per core it may use), spreads
 * subscribers and publishing lanes over them, and adds up what they report. Workers are stopped by
 * PID, and killed if the benchmark exits without stopping them.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { API_KEY, own, sleep } from '../support.js';
import { mergeSamples } from './latency-sample.js';
import type {
  ChannelSpec,
  LoadAnswer,
  LoadOperations,
  Operation,
  PublishRequest,
  SubscribeResult,
} from './load-messages.js';
import type { Target } from './targets.js';

/** A worker using this share of a core or more was the limit, not the server. */
export const CLIENT_LIMIT_SHARE = 0.9;
/** Connects (or joins) each worker has in flight at once. */
const CONNECTS_IN_FLIGHT = 200;
const CONNECT_TIMEOUT_MS = 20_000;

/** What the subscribers took in since `mark`, over all workers. */
export interface Received {
  received: number;
  dropped: number;
  /** Publish-to-receive latency in ms, sampled. */
  latencies: number[];
  /** Each worker's CPU share of a core over the window. */
  workerShares: number[];
  /** Some worker used {@link CLIENT_LIMIT_SHARE} of a core or more. */
  clientLimited: boolean;
}

/** A publishing run, added up over the workers that published. */
export interface Published {
  requests: number;
  pushes: number;
  failures: Record<string, number>;
  pushedTo: Record<string, number>;
  latencies: number[];
  wallS: number;
}

// Users (a token's `sub`) unique to the run: pushcast caps the sockets of one user per node.
let nextRun = 0;

/**
 * The load: subscribers numbered 0, 1, ... (subscriber i on node `i % nodes`, in worker
 * `i % workers`), kept open across scenarios until {@link close}, and the publishers.
 */
export class LoadClient {
  /** Subscribers joined to each channel since the last close. */
  members: Record<string, number> = {};
  private nextId = 1;
  private userPrefix = `bench-${process.pid}-${nextRun++}`;
  private readonly pending = new Map<
    number,
    { resolve: (answer: unknown) => void; reject: (err: Error) => void }
  >();

  private constructor(private readonly procs: ChildProcess[]) {
    for (const proc of procs) {
      proc.on('message', (msg: LoadAnswer) => {
        const call = this.pending.get(msg.id);
        if (!call) return;
        this.pending.delete(msg.id);
        if (msg.ok) call.resolve(msg.answer);
        else call.reject(new Error(`load worker ${proc.pid}: ${msg.error}`));
      });
      proc.once('exit', (code, signal) => {
        for (const [id, call] of this.pending) {
          this.pending.delete(id);
          call.reject(new Error(`load worker ${proc.pid} exited (${code ?? signal})`));
        }
      });
    }
  }

  /** Forks `count` workers and waits until each says it is ready. */
  static async start(count: number): Promise<LoadClient> {
    const procs = [...Array(count).keys()].map(() => {
      return own(
        fork(new URL('./load-worker.ts', import.meta.url).pathname, [], {
          execArgv: ['--import', 'tsx'],
          serialization: 'advanced',
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        }),
      );
    });
    await Promise.all(
      procs.map(
        (proc) =>
          new Promise<void>((resolve, reject) => {
            proc.once('message', () => resolve());
            proc.once('exit', (code) => reject(new Error(`load worker exited ${code}`)));
          }),
      ),
    );
    return new LoadClient(procs);
  }

  private call<K extends Operation>(
    worker: number,
    op: K,
    request: LoadOperations[K]['request'],
  ): Promise<LoadOperations[K]['answer']> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, {
        resolve: (answer) => resolve(answer as LoadOperations[K]['answer']),
        reject,
      });
      this.procs[worker]!.send({ id, op, ...request });
    });
  }

  private all<K extends Operation>(
    op: K,
    request: LoadOperations[K]['request'],
  ): Promise<Array<LoadOperations[K]['answer']>> {
    return Promise.all(this.procs.map((_, w) => this.call(w, op, request)));
  }

  /**
   * Joins subscribers `from` to `to` - 1 to their channel, each on its own connection, opening
   * the connections not open yet.
   */
  async subscribe(
    target: Target,
    from: number,
    to: number,
    channel: ChannelSpec,
  ): Promise<SubscribeResult> {
    const shares = this.procs.map(() => [] as number[]);
    for (let i = from; i < to; i++) shares[i % shares.length]!.push(i);
    const results = await Promise.all(
      shares.map((indices, w) =>
        this.call(w, 'subscribe', {
          wire: target.kind === 'ws' ? 'json' : 'socketio',
          urls: target.nodes.map((n) => n.url),
          indices,
          channel,
          userPrefix: this.userPrefix,
          auth: target.kind === 'pushcast',
          inFlight: CONNECTS_IN_FLIGHT,
          timeoutMs: CONNECT_TIMEOUT_MS,
        }),
      ),
    );
    const total: SubscribeResult = {
      connected: 0,
      rejoined: 0,
      failed: 0,
      errors: {},
      joined: {},
      timings: [],
      wallS: 0,
    };
    for (const r of results) {
      total.connected += r.connected;
      total.rejoined += r.rejoined;
      total.failed += r.failed;
      addCounts(total.errors, r.errors);
      addCounts(total.joined, r.joined);
      total.timings.push(...r.timings);
      total.wallS = Math.max(total.wallS, r.wallS);
    }
    addCounts(this.members, total.joined);
    return total;
  }

  /** Starts a measuring window in every worker. */
  async mark(): Promise<void> {
    await this.all('mark', {});
  }

  /** Messages received and subscribers dropped since the mark. */
  async counts(): Promise<{ received: number; dropped: number }> {
    const all = await this.all('counts', {});
    return {
      received: all.reduce((a, c) => a + c.received, 0),
      dropped: all.reduce((a, c) => a + c.dropped, 0),
    };
  }

  /**
   * Everything received since the mark, with each worker's CPU share of a core over `wallS`
   * (default: its own time since the mark).
   */
  async report(wallS?: number): Promise<Received> {
    const all = await this.all('report', {});
    const workerShares = all.map((r) => r.cpuS / (wallS ?? r.wallS));
    return {
      received: all.reduce((a, r) => a + r.received, 0),
      dropped: all.reduce((a, r) => a + r.dropped, 0),
      latencies: mergeSamples(all.map((r) => ({ values: r.latencies, seen: r.latenciesSeen }))),
      workerShares,
      clientLimited: workerShares.some((s) => s >= CLIENT_LIMIT_SHARE),
    };
  }

  /**
   * Publishes to the target's nodes in turn with the bench API key (the baselines ignore it):
   * from the first worker alone, or with the lanes and the rate spread over every worker.
   */
  async publish(
    target: Target,
    spec: Omit<PublishRequest, 'urls' | 'apiKey'>,
    spread: boolean,
  ): Promise<Published> {
    const n = spread ? Math.min(this.procs.length, spec.lanes) : 1;
    const results = await Promise.all(
      [...Array(n).keys()].map((w) =>
        this.call(w, 'publish', {
          ...spec,
          urls: target.nodes.map((node) => node.url),
          apiKey: API_KEY,
          // Lanes shared out as evenly as they go; the rate in proportion to them.
          lanes: Math.floor(spec.lanes / n) + (w < spec.lanes % n ? 1 : 0),
          ...(spec.rate === undefined
            ? {}
            : {
                rate:
                  (spec.rate * (Math.floor(spec.lanes / n) + (w < spec.lanes % n ? 1 : 0))) /
                  spec.lanes,
              }),
        }),
      ),
    );
    const total: Published = {
      requests: 0,
      pushes: 0,
      failures: {},
      pushedTo: {},
      latencies: mergeSamples(results.map((r) => ({ values: r.latencies, seen: r.latenciesSeen }))),
      wallS: 0,
    };
    for (const r of results) {
      total.requests += r.requests;
      total.pushes += r.pushes;
      addCounts(total.failures, r.failures);
      addCounts(total.pushedTo, r.pushedTo);
      total.wallS = Math.max(total.wallS, r.wallS);
    }
    return total;
  }

  /**
   * Waits until `expected` messages have arrived since the mark, or none has for `quietMs`, or
   * `maxMs` has passed: the count then, and when (performance.now()) it was last seen to grow.
   */
  async awaitDeliveries(
    expected: number,
    { quietMs, maxMs }: { quietMs: number; maxMs: number },
  ): Promise<{ received: number; lastAt: number }> {
    const deadline = performance.now() + maxMs;
    let last = -1;
    let lastAt = performance.now();
    for (;;) {
      const { received } = await this.counts();
      const now = performance.now();
      if (received !== last) {
        last = received;
        lastAt = now;
      }
      if (received >= expected || now - lastAt >= quietMs || now >= deadline)
        return { received, lastAt };
      await sleep(20);
    }
  }

  /** Closes every subscriber (see the `close` operation); the next ones are new users. */
  async close(waitMs: number): Promise<void> {
    await this.all('close', { waitMs });
    this.members = {};
    this.userPrefix = `bench-${process.pid}-${nextRun++}`;
  }

  /** Ends the workers: disconnect (they exit), SIGKILL by PID if one lingers. */
  async stop(): Promise<void> {
    await Promise.all(
      this.procs.map(async (proc) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return;
        const exited = new Promise((r) => proc.once('exit', r));
        proc.disconnect();
        await Promise.race([exited, sleep(3000)]);
        if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      }),
    );
  }
}

/** Adds one tally by key to another, and gives the sum (`into`). */
export function addCounts(
  into: Record<string, number>,
  from: Record<string, number>,
): Record<string, number> {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
  return into;
}
