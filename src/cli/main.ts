import { parseArgs } from 'node:util';
import { ConfigError } from '../config/load.js';
import { mintToken } from './token.js';

const HELP: Record<string, string> = {
  main: `Usage: pushcast <command> [options]

Commands:
  serve                      start a node (settings from config/ and PUSHCAST_* variables)
  token --sub <id> [--channels a,b:*] [--ttl 3600]
                             mint a socket token with the configured JWT secret (development)
  help [command]             show help
`,
  token: `Usage: pushcast token --sub <user id> [--channels <names or prefix*, comma-separated>] [--ttl <seconds>]

Prints a JWT signed with PUSHCAST_JWT_SECRET (or the development secret outside production).
`,
  serve: `Usage: pushcast serve

Starts one node. Settings: config/<NODE_ENV>.json or PUSHCAST_CONFIG, then PUSHCAST_* variables.
`,
};

/** The `pushcast` command line. Exit codes: 0 ok, 1 failure, 2 usage or settings error. */
export async function runCli(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(HELP[rest[0] ?? 'main'] ?? HELP.main!);
    return 0;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(HELP[command] ?? HELP.main!);
    return HELP[command] ? 0 : 2;
  }
  try {
    switch (command) {
      case 'serve':
        await import('../main.js');
        return -1;
      case 'token': {
        const { values } = parseArgs({
          args: rest,
          options: {
            sub: { type: 'string' },
            channels: { type: 'string' },
            ttl: { type: 'string' },
          },
        });
        if (!values.sub) return usage('token', '--sub is required');
        const ttlS = values.ttl === undefined ? 3600 : Number(values.ttl);
        if (!Number.isInteger(ttlS) || ttlS <= 0)
          return usage('token', '--ttl must be a positive whole number');
        const channels = (values.channels ?? '')
          .split(',')
          .map((c) => c.trim())
          .filter(Boolean);
        process.stdout.write(`${await mintToken({ sub: values.sub, channels, ttlS })}\n`);
        return 0;
      }
      default:
        return usage('main', `unknown command "${command}"`);
    }
  } catch (err) {
    if (err instanceof ConfigError || (err instanceof TypeError && 'code' in err)) {
      process.stderr.write(`pushcast: ${err.message}\n`);
      return 2;
    }
    process.stderr.write(`pushcast: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}

function usage(command: string, problem: string): number {
  process.stderr.write(`pushcast: ${problem}\n\n${HELP[command] ?? HELP.main}`);
  return 2;
}
