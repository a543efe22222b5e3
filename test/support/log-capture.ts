import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';

/** A logger writing JSON lines into memory: each line as written, and parsed. */
export interface CapturedLog {
  logger: Logger;
  /** The lines as written (to check what never appears in them, e.g. a secret). */
  raw: string[];
  lines: Array<Record<string, unknown> & { msg: string }>;
}

/** A pino logger at `level` whose lines a test reads back (a node's `logger` option). */
export function captureLog(level = 'warn'): CapturedLog {
  const raw: string[] = [];
  const lines: CapturedLog['lines'] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        raw.push(line);
        lines.push(JSON.parse(line) as CapturedLog['lines'][number]);
      }
      done();
    },
  });
  return { logger: pino({ level }, sink), raw, lines };
}
