import { pino, type DestinationStream, type Logger } from 'pino';

/** Output waiting for a slow stdout reader past which log lines are dropped, not queued. */
const MAX_PENDING_BYTES = 16 * 1024 * 1024;

/**
 * The process's stdout, for log lines and the first-run banner. Its reader may go away (a closed
 * pipe: EPIPE) or fall behind; neither may block the node, its shutdown included, or take it down:
 *
 * - writes go to `process.stdout`, which never blocks the event loop on a pipe (what a full pipe
 *   cannot take yet waits in memory) and is not waited for at exit (pino's own destination flushes
 *   at exit and retries a write that failed with EPIPE for ever: with its reader gone, a node
 *   ignored SIGTERM);
 * - the first write error (EPIPE, EBADF, EIO...) stops all output for good, said once on stderr;
 * - past `MAX_PENDING_BYTES` waiting for a slow reader, lines are dropped and counted.
 */
class Stdout {
  private stream: NodeJS.WriteStream | undefined;
  private closed = false;
  private dropped = 0;
  /** Told how many lines were dropped once the reader has caught up. */
  onDropped: ((count: number) => void) | undefined;

  /** Writes `text` if stdout can take it; false when it was dropped. */
  write(text: string): boolean {
    const stream = this.attach();
    if (this.closed) return false;
    if (stream.destroyed || !stream.writable) {
      this.close(stream.errored);
      return false;
    }
    if (stream.writableLength > MAX_PENDING_BYTES) {
      if (this.dropped++ === 0) stream.once('drain', () => this.reportDropped());
      return false;
    }
    try {
      stream.write(text);
      return true;
    } catch (err) {
      // A file or terminal is written synchronously: its errors are thrown.
      this.close(err);
      return false;
    }
  }

  private attach(): NodeJS.WriteStream {
    if (this.stream) return this.stream;
    this.stream = process.stdout;
    // Without a listener, an EPIPE on stdout is an uncaught exception.
    this.stream.on('error', (err) => this.close(err));
    // stderr carries the note below and start errors: a closed stderr must not crash either.
    process.stderr.on('error', () => {});
    return this.stream;
  }

  private close(err: unknown): void {
    if (this.closed) return;
    this.closed = true;
    const code = (err as { code?: unknown } | undefined)?.code;
    try {
      process.stderr.write(
        `pushcast: stdout is closed (${typeof code === 'string' ? code : 'not writable'}): ` +
          'logging stopped; the node keeps serving\n',
      );
    } catch {
      // stderr is gone too.
    }
  }

  private reportDropped(): void {
    const count = this.dropped;
    this.dropped = 0;
    if (count > 0 && !this.closed) this.onDropped?.(count);
  }
}

const stdout = new Stdout();

/** Writes to stdout (the first-run banner): never throws, never blocks, nothing once it is closed. */
export function writeStdout(text: string): boolean {
  return stdout.write(text);
}

/** The process logger: JSON lines on stdout; secrets are redacted wherever they appear. */
export function createLogger(level: string, node: string): Logger {
  const destination: DestinationStream = { write: (line: string) => void stdout.write(line) };
  const log = pino(
    {
      level,
      base: { node },
      redact: {
        paths: [
          'req.headers.authorization',
          'headers.authorization',
          '*.token',
          'token',
          'apiKey',
          'secret',
        ],
        censor: '[redacted]',
      },
    },
    destination,
  );
  stdout.onDropped = (dropped) =>
    log.warn({ dropped }, 'log lines dropped: stdout was not read fast enough');
  return log;
}
