import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';

/** A Node child process running a TypeScript entry point through tsx, with captured output. */
export interface NodeProcess {
  pid: number;
  stdout: string[];
  stderr: string[];
  waitForLine(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): void;
  /**
   * Closes this end of the child's stdout pipe, as a log reader that went away would: the child's
   * next writes to stdout fail with EPIPE. Lines already read stay in `stdout`.
   */
  closeStdout(): void;
  [Symbol.asyncDispose](): Promise<void>;
}

// Resolve tsx to an absolute file URL so `--import` works whatever cwd the child runs in.
const TSX_LOADER = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

// If 'close' has not arrived this long after 'exit', a grandchild is holding our pipes; give up
// waiting for the remaining output rather than hanging the test.
const CLOSE_AFTER_EXIT_MS = 2_000;
const OUTPUT_TAIL_LINES = 40;

// Children still running, SIGKILLed synchronously if the test process exits without disposing them.
const liveChildren = new Set<number>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const pid of liveChildren) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  });
}

/** Spawns `node --import tsx <script>` with a minimal environment plus `env`. */
export function spawnNode(args: {
  script: string;
  env: Record<string, string>;
  cwd?: string;
  /** Command-line arguments after the script. */
  argv?: string[];
}): NodeProcess {
  installExitHook();
  // A minimal env keeps the child independent of whatever the developer's shell exports
  // (e.g. stray PUSHCAST_* or NODE_OPTIONS from vitest itself).
  const env: Record<string, string> = {};
  for (const key of ['PATH', 'HOME'] as const) {
    const value = process.env[key];
    if (value !== undefined) env[key] = value;
  }
  Object.assign(env, args.env);

  const child = spawn(
    process.execPath,
    ['--import', TSX_LOADER, args.script, ...(args.argv ?? [])],
    {
      cwd: args.cwd,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );

  const stdout: string[] = [];
  const stderr: string[] = [];
  // Waiters re-check on every new line and on exit.
  const listeners = new Set<() => void>();
  const notify = (): void => {
    for (const listener of [...listeners]) listener();
  };
  createInterface({ input: child.stdout, crlfDelay: Infinity }).on('line', (line) => {
    stdout.push(line);
    notify();
  });
  createInterface({ input: child.stderr, crlfDelay: Infinity }).on('line', (line) => {
    stderr.push(line);
    notify();
  });

  let finished = false;
  if (child.pid !== undefined) liveChildren.add(child.pid);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (finished) return;
      finished = true;
      if (child.pid !== undefined) liveChildren.delete(child.pid);
      resolve({ code, signal });
      notify();
    };
    // 'close' fires after stdio has drained, so the line arrays are complete when `exited` settles.
    child.once('close', finish);
    child.once('exit', (code, signal) => {
      if (child.pid !== undefined) liveChildren.delete(child.pid);
      setTimeout(() => finish(code, signal), CLOSE_AFTER_EXIT_MS).unref();
    });
    child.once('error', (err) => {
      stderr.push(`spawn error: ${err.message}`);
      finish(null, null);
    });
  });

  const describeOutput = (): string =>
    `--- stdout ---\n${stdout.slice(-OUTPUT_TAIL_LINES).join('\n')}\n` +
    `--- stderr ---\n${stderr.slice(-OUTPUT_TAIL_LINES).join('\n')}`;

  const isRunning = (): boolean => child.exitCode === null && child.signalCode === null;

  const waitForLine = (re: RegExp, timeoutMs = 15_000): Promise<RegExpMatchArray> => {
    // Scan both streams from the start each time: cheap at test-output sizes, and a line printed
    // before the call is still found. exec() with lastIndex reset keeps capture groups even for /g.
    const find = (): RegExpMatchArray | undefined => {
      for (const line of [...stdout, ...stderr]) {
        re.lastIndex = 0;
        const match = re.exec(line);
        if (match !== null) return match;
      }
      return undefined;
    };
    const immediate = find();
    if (immediate !== undefined) return Promise.resolve(immediate);

    return new Promise((resolve, reject) => {
      const cleanup = (): void => {
        clearTimeout(timer);
        listeners.delete(check);
      };
      const check = (): void => {
        const match = find();
        if (match !== undefined) {
          cleanup();
          resolve(match);
        } else if (finished) {
          cleanup();
          reject(
            new Error(
              `process ${child.pid ?? '?'} (${args.script}) exited ` +
                `(code ${String(child.exitCode)}, signal ${String(child.signalCode)}) ` +
                `before printing a line matching ${String(re)}\n${describeOutput()}`,
            ),
          );
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(
          new Error(
            `timed out after ${timeoutMs} ms waiting for a line matching ${String(re)} ` +
              `from ${args.script}\n${describeOutput()}`,
          ),
        );
      }, timeoutMs);
      listeners.add(check);
      // The process may already have finished before this call.
      check();
    });
  };

  return {
    pid: child.pid ?? -1,
    stdout,
    stderr,
    waitForLine,
    exited,
    kill(signal: NodeJS.Signals = 'SIGTERM'): void {
      if (isRunning()) child.kill(signal);
    },
    closeStdout(): void {
      child.stdout.destroy();
    },
    async [Symbol.asyncDispose](): Promise<void> {
      if (isRunning()) child.kill('SIGKILL');
      await exited;
    },
  };
}
