import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { afterAll, beforeAll } from 'vitest';
import { connectRedis, type RedisClients } from '../../src/backend/redis/redis-clients.js';

import { freePort } from './ports.js';

/** A real redis-server child process owned by one test. */
export interface RedisFixture {
  url: string;
  port: number;
  pid: number;
  stop(): Promise<void>;
  kill(signal?: NodeJS.Signals): Promise<void>;
  restart(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

const READY_TIMEOUT_MS = 5_000;
const STOP_GRACE_MS = 3_000;
// How often to retry spawning when the port turned out to be taken (freePort is inherently racy,
// and after a SIGKILL the old socket may linger for a moment).
const SPAWN_ATTEMPTS = 5;

interface Running {
  child: ChildProcess;
  exited: Promise<void>;
  output: string[];
}

// Children and temp dirs still alive; reaped synchronously if the test process exits without
// stopping them, so a failed test never leaves a redis-server behind. Only our own PIDs are
// signalled, never anything matched by name.
const liveChildren = new Set<ChildProcess>();
const liveDirs = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of liveChildren) {
      if (isRunning(child) && child.pid !== undefined) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
    }
    for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true });
  });
}

function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Resolves once a raw RESP PING on the port is answered with +PONG (not e.g. -LOADING). */
function pingOnce(port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let buffered = '';
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      if (buffered.includes('\r\n')) done(buffered.startsWith('+PONG'));
    });
  });
}

function spawnRedis(port: number, dir: string, extraArgs: string[] = []): Running {
  const child = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--protected-mode',
      'no',
      '--daemonize',
      'no',
      '--loglevel',
      'warning',
      // Tests stall Redis on purpose (DEBUG SLEEP) to hold pushes in flight.
      '--enable-debug-command',
      'local',
      '--dir',
      dir,
      ...extraArgs,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  // Keep a bounded tail of the log so startup failures can be explained without the pipes filling.
  const output: string[] = [];
  const collect = (chunk: Buffer): void => {
    output.push(chunk.toString('utf8'));
    if (output.length > 50) output.shift();
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  // Attach the exit listener immediately so a fast crash is never missed.
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      liveChildren.delete(child);
      resolve();
    });
    child.once('error', (err) => {
      output.push(`spawn error: ${err.message}`);
      liveChildren.delete(child);
      resolve();
    });
  });
  liveChildren.add(child);
  return { child, exited, output };
}

/** Spawns redis-server on `port` and waits for +PONG; throws with the server log if it dies. */
async function startOn(port: number, dir: string, extraArgs: string[] = []): Promise<Running> {
  const running = spawnRedis(port, dir, extraArgs);
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (!isRunning(running.child) || running.child.pid === undefined) {
      await running.exited;
      throw new Error(`redis-server on port ${port} exited early:\n${running.output.join('')}`);
    }
    if (await pingOnce(port, 500)) return running;
    await sleep(50);
  }
  await signalAndWait(running, 'SIGKILL');
  throw new Error(`redis-server on port ${port} not ready after ${READY_TIMEOUT_MS} ms`);
}

async function signalAndWait(running: Running, signal: NodeJS.Signals): Promise<void> {
  if (isRunning(running.child)) running.child.kill(signal);
  await running.exited;
}

/**
 * A real redis-server for the enclosing file or describe block, started before its tests and
 * stopped after; with `clients`, the node's own connections to it too (as a backend opens them).
 */
export function useRedis(): { readonly fixture: RedisFixture; readonly clients: RedisClients } {
  let fixture: RedisFixture | undefined;
  let clients: RedisClients | undefined;
  beforeAll(async () => {
    fixture = await startRedis();
    clients = await connectRedis(
      fixture.url,
      { commandTimeoutMs: 2000 },
      pino({ level: 'silent' }),
    );
  });
  afterAll(async () => {
    await clients?.close();
    await fixture?.stop();
  });
  return {
    get fixture() {
      return fixture!;
    },
    get clients() {
      return clients!;
    },
  };
}

/** Starts a throwaway redis-server (no persistence) on a free port and waits until it answers. */
export async function startRedis(opts: { cluster?: false } = {}): Promise<RedisFixture> {
  if (opts.cluster) throw new Error('cluster mode is not supported by startRedis');
  installExitHook();
  const dir = mkdtempSync(join(tmpdir(), 'pushcast-redis-'));
  liveDirs.add(dir);

  let port = 0;
  let current: Running | undefined;
  let lastError: unknown;
  for (let attempt = 0; attempt < SPAWN_ATTEMPTS && current === undefined; attempt++) {
    port = await freePort();
    try {
      current = await startOn(port, dir);
    } catch (err) {
      lastError = err;
    }
  }
  if (current === undefined) {
    liveDirs.delete(dir);
    rmSync(dir, { recursive: true, force: true });
    throw lastError;
  }
  let running: Running = current;

  const stop = async (): Promise<void> => {
    const target = running;
    if (!isRunning(target.child)) return target.exited;
    target.child.kill('SIGTERM');
    // Escalate if redis does not shut down in time; unref so the timer never holds the loop open.
    const escalate = setTimeout(() => {
      if (isRunning(target.child)) target.child.kill('SIGKILL');
    }, STOP_GRACE_MS);
    escalate.unref();
    await target.exited;
    clearTimeout(escalate);
  };

  const fixture: RedisFixture = {
    url: `redis://127.0.0.1:${port}`,
    port,
    // A getter because restart() replaces the child process.
    get pid(): number {
      return running.child.pid ?? -1;
    },
    stop,
    kill: (signal: NodeJS.Signals = 'SIGKILL') => signalAndWait(running, signal),
    async restart(): Promise<void> {
      await stop();
      // The dir is removed on dispose; recreate it so a restart after dispose still works.
      mkdirSync(dir, { recursive: true });
      liveDirs.add(dir);
      let error: unknown;
      // The same port must be reused; the kernel may briefly refuse it right after a kill.
      for (let attempt = 0; attempt < SPAWN_ATTEMPTS; attempt++) {
        try {
          running = await startOn(port, dir);
          return;
        } catch (err) {
          error = err;
          await sleep(200);
        }
      }
      throw error;
    },
    async [Symbol.asyncDispose](): Promise<void> {
      await stop();
      liveDirs.delete(dir);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return fixture;
}

/** One redis-server of a {@link RedisClusterFixture}. */
export interface RedisClusterNode {
  port: number;
  pid: number;
  /** False once killed or stopped. */
  readonly running: boolean;
}

/** A real Redis Cluster on loopback (one redis-server per node) owned by one test file. */
export interface RedisClusterFixture {
  /** `127.0.0.1:<port>` of every node: what REDIS_CLUSTER_NODES takes. */
  seeds: string[];
  nodes: RedisClusterNode[];
  /** Ports of the nodes that are masters now (asked of the cluster, live nodes only). */
  masters(): Promise<number[]>;
  /** Port of the master serving `slot` now. */
  masterOfSlot(slot: number): Promise<number>;
  /** Which master port serves each slot now (one CLUSTER SLOTS). */
  slotMasters(): Promise<(slot: number) => number>;
  /** Sends one command to the node on `port` (a fresh connection, closed after). */
  command(port: number, ...args: Array<string | number>): Promise<unknown>;
  /** Signals the node on `port` (only the PID this fixture started) and waits for it to exit. */
  kill(port: number, signal?: NodeJS.Signals): Promise<void>;
  /**
   * Waits until every live node says `cluster_state:ok` and every slot is served by a live
   * master (after a kill: once a replica took over).
   */
  waitHealthy(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

const CLUSTER_NODE_TIMEOUT_MS = 1000;
const CLUSTER_READY_TIMEOUT_MS = 25_000;

/** Runs redis-cli with `args`; rejects with its output if it fails or takes longer than 20 s. */
function redisCli(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('redis-cli', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (output += c.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(output);
      else reject(new Error(`redis-cli ${args.join(' ')} exited with ${code}:\n${output}`));
    });
  });
}

/** One command on a fresh connection to 127.0.0.1:port (no retries, bounded). */
async function commandOn(port: number, args: Array<string | number>): Promise<unknown> {
  const { Redis } = await import('ioredis');
  const client = new Redis({
    host: '127.0.0.1',
    port,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
    connectTimeout: 1000,
    commandTimeout: 2000,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    const [name, ...rest] = args;
    return await client.call(String(name), ...rest);
  } finally {
    client.disconnect();
  }
}

/** Two ports that were free a moment ago: the client port and the cluster bus port. */
async function clusterPorts(): Promise<[number, number]> {
  const port = await freePort();
  let bus = await freePort();
  while (bus === port) bus = await freePort();
  return [port, bus];
}

/**
 * Starts a Redis Cluster on loopback: `masters + masters * replicas` redis-servers with
 * `--cluster-enabled yes` and a short node timeout (failover in about two seconds), joined by
 * `redis-cli --cluster create`, and waits until every node says `cluster_state:ok` and every
 * replica is in sync. Only the PIDs it started are ever signalled.
 */
export async function startRedisCluster(
  options: { masters?: number; replicas?: 0 | 1 } = {},
): Promise<RedisClusterFixture> {
  installExitHook();
  const masters = options.masters ?? 3;
  const replicas = options.replicas ?? 0;
  const total = masters * (1 + replicas);
  const root = mkdtempSync(join(tmpdir(), 'pushcast-redis-cluster-'));
  liveDirs.add(root);
  const started: Array<{ port: number; running: Running }> = [];
  const stopAll = async (): Promise<void> => {
    await Promise.all(
      started.map(async ({ running }) => {
        if (!isRunning(running.child)) return running.exited;
        running.child.kill('SIGTERM');
        const escalate = setTimeout(() => {
          if (isRunning(running.child)) running.child.kill('SIGKILL');
        }, STOP_GRACE_MS);
        escalate.unref();
        await running.exited;
        clearTimeout(escalate);
      }),
    );
  };
  const removeDir = (): void => {
    liveDirs.delete(root);
    rmSync(root, { recursive: true, force: true });
  };

  try {
    for (let i = 0; i < total; i++) {
      let lastError: Error | undefined;
      for (let attempt = 0; attempt < SPAWN_ATTEMPTS; attempt++) {
        const [port, busPort] = await clusterPorts();
        const dir = join(root, String(port));
        mkdirSync(dir, { recursive: true });
        try {
          const running = await startOn(port, dir, [
            '--cluster-enabled',
            'yes',
            '--cluster-port',
            String(busPort),
            '--cluster-config-file',
            join(dir, 'nodes.conf'),
            '--cluster-node-timeout',
            String(CLUSTER_NODE_TIMEOUT_MS),
            // A master without its replica keeps serving (the failover test kills masters).
            '--cluster-require-full-coverage',
            'no',
          ]);
          started.push({ port, running });
          lastError = undefined;
          break;
        } catch (err) {
          lastError = err as Error;
        }
      }
      if (lastError !== undefined) throw lastError;
    }
    const seeds = started.map(({ port }) => `127.0.0.1:${port}`);
    await redisCli([
      '--cluster',
      'create',
      ...seeds,
      '--cluster-replicas',
      String(replicas),
      '--cluster-yes',
    ]);

    const nodes: RedisClusterNode[] = started.map(({ port, running }) => ({
      port,
      pid: running.child.pid ?? -1,
      get running() {
        return isRunning(running.child);
      },
    }));
    const live = (): number[] => nodes.filter((n) => n.running).map((n) => n.port);
    const command = (port: number, ...args: Array<string | number>): Promise<unknown> =>
      commandOn(port, args);

    /** CLUSTER SLOTS as seen by the first live node that answers. */
    const slotTable = async (): Promise<Array<[number, number, number]>> => {
      for (const port of live()) {
        try {
          const reply = (await command(port, 'CLUSTER', 'SLOTS')) as Array<
            [number, number, [string, number, ...unknown[]], ...unknown[]]
          >;
          return reply.map(([from, to, master]) => [from, to, Number(master[1])]);
        } catch {
          // Try the next node.
        }
      }
      throw new Error('no cluster node answers CLUSTER SLOTS');
    };

    const healthy = async (): Promise<boolean> => {
      const ports = live();
      for (const port of ports) {
        const info = String(await command(port, 'CLUSTER', 'INFO').catch(() => ''));
        if (!info.includes('cluster_state:ok')) return false;
        // Every node sees the same set of live masters owning all the slots.
        const table = await command(port, 'CLUSTER', 'SLOTS').catch(() => undefined);
        if (!Array.isArray(table)) return false;
        let covered = 0;
        for (const [from, to, master] of table as Array<[number, number, [string, number]]>) {
          if (!ports.includes(Number(master[1]))) return false;
          covered += to - from + 1;
        }
        if (covered !== 16384) return false;
        const replication = String(await command(port, 'INFO', 'replication').catch(() => ''));
        if (replication.includes('role:slave') && !replication.includes('master_link_status:up'))
          return false;
      }
      return true;
    };

    const waitHealthy = async (timeoutMs = CLUSTER_READY_TIMEOUT_MS): Promise<void> => {
      const deadline = Date.now() + timeoutMs;
      while (!(await healthy())) {
        if (Date.now() > deadline)
          throw new Error(`Redis Cluster not healthy after ${timeoutMs} ms`);
        await sleep(100);
      }
    };
    await waitHealthy();
    if (replicas > 0) {
      // Every master sees its replica in sync (WAIT and failover depend on it).
      const deadline = Date.now() + CLUSTER_READY_TIMEOUT_MS;
      for (;;) {
        const roles = await Promise.all(
          live().map(async (port) => String(await command(port, 'INFO', 'replication'))),
        );
        const ready = roles
          .filter((r) => r.includes('role:master'))
          .every((r) => Number(/connected_slaves:(\d+)/.exec(r)?.[1] ?? 0) >= replicas);
        if (ready) break;
        if (Date.now() > deadline) throw new Error('Redis Cluster replicas not in sync');
        await sleep(100);
      }
    }

    const stop = async (): Promise<void> => {
      await stopAll();
      removeDir();
    };
    return {
      seeds,
      nodes,
      async masters() {
        const table = await slotTable();
        return [...new Set(table.map(([, , master]) => master))].sort((a, b) => a - b);
      },
      async slotMasters() {
        const table = await slotTable();
        return (slot) => table.find(([from, to]) => slot >= from && slot <= to)?.[2] ?? -1;
      },
      async masterOfSlot(slot) {
        const table = await slotTable();
        const row = table.find(([from, to]) => slot >= from && slot <= to);
        if (!row) throw new Error(`slot ${slot} is not served`);
        return row[2];
      },
      command,
      async kill(port, signal = 'SIGKILL') {
        const node = started.find((n) => n.port === port);
        if (!node) throw new Error(`no cluster node on port ${port}`);
        await signalAndWait(node.running, signal);
      },
      waitHealthy,
      stop,
      [Symbol.asyncDispose]: stop,
    };
  } catch (err) {
    await stopAll();
    removeDir();
    throw err;
  }
}
