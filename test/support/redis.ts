import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

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

function spawnRedis(port: number, dir: string): Running {
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
async function startOn(port: number, dir: string): Promise<Running> {
  const running = spawnRedis(port, dir);
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
