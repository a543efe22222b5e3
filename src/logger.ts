import { pino, type Logger } from 'pino';

/** The process logger: JSON lines on stdout; secrets are redacted wherever they appear. */
export function createLogger(level: string, node: string): Logger {
  return pino({
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
  });
}
