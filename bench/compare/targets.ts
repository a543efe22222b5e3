/**
 * The servers the comparison benchmarks run side by side: pushcast (its `tsc` build, through
 * bench/support.ts) and the two baselines in bench/baselines/, one or two nodes each, sharing
 * pushes through Redis when there are two. Every process is started and stopped by its PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import {
  httpRequest,
  metric,
  nodeArgs,
  own,
  sleep,
  startNode,
  stop,
  freePort,
} from '../support.js';
import { rssBytes } from './proc.js';

/** The servers compared. */
export const TARGET_KINDS = ['pushcast', 'socketio', 'ws'] as const;
export type TargetKind = (typeof TARGET_KINDS)[number];

/** One running server process. */
export interface TargetNode {
  url: string;
  port: number;
  pid: number;
  child: ChildProcess;
}

/** A running target: its nodes, and how to stop them all. */
export interface Target {
  kind: TargetKind;
  nodes: TargetNode[];
  stop(): Promise<void>;
}

/** How to start a target. */
export interface TargetOptions {
  nodes: 1 | 2;
  /** Required for two nodes: the Redis they share pushes through. */
  redisUrl?: string;
  /** Extra environment for every node. */
  env?: Record<string, string>;
  /** Start with --expose-gc so that SIGUSR2 runs a full GC ({@link collectGarbage}). */
  gc?: boolean;
}

const READY_TIMEOUT_MS = 20_000;

/** Starts the target's nodes (in parallel) and resolves once every one is ready. */
export async function startTarget(kind: TargetKind, opts: TargetOptions): Promise<Target> {
  if (opts.nodes === 2 && opts.redisUrl === undefined)
    throw new Error('two nodes share pushes through Redis: redisUrl is required');
  const env = { ...(opts.redisUrl === undefined ? {} : { REDIS_URL: opts.redisUrl }), ...opts.env };
  const starting = [...Array(opts.nodes).keys()].map(() =>
    kind === 'pushcast'
      ? // bench/config.json (PUSHCAST_CONFIG of every bench node) raises the push rate limit and
        // the admission rate (1,000 connections a second by default: thousands of subscribers
        // connect at once here; the baselines admit all). Warnings only: the baselines log
        // nothing per socket, and pushcast's info lines (one per connect and disconnect) would be
        // written to a pipe this process has to read.
        startNode({ LOG_LEVEL: 'warn', ...env }, { gcOnSignal: opts.gc === true })
      : startBaseline(kind, env, opts.gc === true),
  );
  const settled = await Promise.allSettled(starting);
  const nodes = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const stopAll = async (): Promise<void> => {
    await Promise.all(nodes.map((n) => stop(n.child)));
  };
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) {
    await stopAll();
    throw failed.reason;
  }
  return {
    kind,
    nodes: nodes.map(({ url, port, pid, child }) => ({ url, port, pid, child })),
    stop: stopAll,
  };
}

/** `node bench/baselines/<kind>.js` on a free loopback port, ready once /healthz answers 200. */
async function startBaseline(
  kind: Exclude<TargetKind, 'pushcast'>,
  env: Record<string, string>,
  gc: boolean,
): Promise<TargetNode> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [...nodeArgs(), ...(gc ? ['--expose-gc'] : []), `bench/baselines/${kind}.js`],
    {
      env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  own(child);
  // A bounded tail of the output, to explain a start that failed.
  const output: string[] = [];
  const keep = (chunk: Buffer): void => {
    output.push(chunk.toString('utf8'));
    if (output.length > 20) output.shift();
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`${kind} baseline exited ${child.exitCode}: ${output.join('').slice(-1000)}`);
    const ok = await httpRequest(`${url}/healthz`, { timeoutMs: 1000 }).then(
      (a) => a.status === 200,
      () => false,
    );
    if (ok) return { url, port, pid: child.pid ?? -1, child };
    if (Date.now() > deadline) {
      await stop(child);
      throw new Error(`${kind} baseline not ready: ${output.join('').slice(-1000)}`);
    }
    await sleep(50);
  }
}

/** A node's resident memory (from /proc) and V8 heap in use (as the node reports it), in bytes. */
export async function memoryOf(
  target: Target,
  node: TargetNode,
): Promise<{ rss: number; heapUsed: number }> {
  const heapUsed =
    target.kind === 'pushcast'
      ? await metric(node.url, 'nodejs_heap_size_used_bytes')
      : (JSON.parse((await httpRequest(`${node.url}/memory`)).body) as { heapUsed: number })
          .heapUsed;
  return { rss: rssBytes(node.pid), heapUsed };
}

/** A full GC in every node of a target started with `gc: true`, and a moment for it to finish. */
export async function collectGarbage(target: Target): Promise<void> {
  for (const node of target.nodes) process.kill(node.pid, 'SIGUSR2');
  await sleep(500);
}
