import { parseArgs } from 'node:util';
import { ConfigError } from '../config/load.js';
import {
  CliError,
  disconnectCommand,
  pushCommand,
  statsCommand,
  unsubscribeCommand,
} from './api-commands.js';
import { mintToken } from './token.js';

const API_OPTIONS = `  --url <url>    server URL (default: $PUSHCAST_URL or http://localhost:$PORT, port 4000)
  --key <key>    API key (default: $PUSHCAST_API_KEY, the first of $PUSHCAST_API_KEYS, or the development key)`;

const HELP: Record<string, string> = {
  main: `Usage: pushcast <command> [options]

Commands:
  serve                              start a node (settings: config/ files and PUSHCAST_* variables)
  push <channel> <event> <json>      publish a push through the HTTP API
  token --sub <id> [--channels ...]  mint a socket token with the configured JWT secret (development)
  stats                              show the cluster's nodes
  disconnect <userId>                close every connection of a user, cluster-wide
  unsubscribe <channel> <userId>     take a user out of a channel, cluster-wide
  help [command]                     show help for a command

Exit codes: 0 ok, 1 the server refused or could not be reached, 2 bad usage or settings.
`,
  serve: `Usage: pushcast serve

Starts one node. Settings: config/<NODE_ENV>.json or the file in PUSHCAST_CONFIG, then PUSHCAST_*
variables (see README). SIGTERM or SIGINT drains and stops it; a second signal exits at once.
`,
  push: `Usage: pushcast push <channel[,channel...]> <event> <json> [--url <url>] [--key <key>]

Publishes one push and prints its id. Example:
  pushcast push user:42 invoice.paid '{"amount": 12}'

${API_OPTIONS}
`,
  token: `Usage: pushcast token --sub <user id> [--channels <names or prefix*, comma-separated>] [--ttl <seconds>]

Prints a JWT signed with PUSHCAST_JWT_SECRET (the development secret outside production), for
development and tests. Production tokens come from your own backend.
`,
  stats: `Usage: pushcast stats [--json] [--url <url>] [--key <key>]

Shows every live node: id, version, state, uptime, sockets, channels, push rates.

${API_OPTIONS}
`,
  disconnect: `Usage: pushcast disconnect <userId> [--url <url>] [--key <key>]

Closes every connection of the user (the token's sub) on every node and prints how many. Clients
are told why and do not reconnect by themselves. Needs a key with the control (or admin) scope and
no channel limits. Safe to run again.

${API_OPTIONS}
`,
  unsubscribe: `Usage: pushcast unsubscribe <channel> <userId> [--url <url>] [--key <key>]

Takes the user's connections out of the channel on every node and prints how many; each gets
"left" (reason "unsubscribed") and is not rejoined by the SDK. Needs a key with the control (or
admin) scope that reaches the channel. Safe to run again.

${API_OPTIONS}
`,
};

/** The `pushcast` command line; returns the exit code (-1: `serve` owns the process). */
export async function runCli(
  argv: string[],
  out = process.stdout,
  err = process.stderr,
): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === 'help' || command === '--help' || command === '-h') {
    const topic = rest[0] ?? 'main';
    out.write(HELP[topic] ?? HELP.main!);
    return HELP[topic] ? 0 : 2;
  }
  if (!HELP[command] || command === 'main')
    return usage(err, 'main', `unknown command "${command}"`);
  if (rest.includes('--help') || rest.includes('-h')) {
    out.write(HELP[command]);
    return 0;
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
        if (!values.sub) return usage(err, 'token', '--sub is required');
        const ttlS = values.ttl === undefined ? 3600 : Number(values.ttl);
        if (!Number.isInteger(ttlS) || ttlS <= 0)
          return usage(err, 'token', '--ttl must be a positive whole number');
        const channels = (values.channels ?? '')
          .split(',')
          .map((c) => c.trim())
          .filter(Boolean);
        out.write(`${await mintToken({ sub: values.sub, channels, ttlS })}\n`);
        return 0;
      }
      case 'push': {
        const { values, positionals } = parseArgs({
          args: rest,
          allowPositionals: true,
          options: { url: { type: 'string' }, key: { type: 'string' } },
        });
        out.write(`${await pushCommand(positionals, values)}\n`);
        return 0;
      }
      case 'disconnect':
      case 'unsubscribe': {
        const { values, positionals } = parseArgs({
          args: rest,
          allowPositionals: true,
          options: { url: { type: 'string' }, key: { type: 'string' } },
        });
        const run = command === 'disconnect' ? disconnectCommand : unsubscribeCommand;
        out.write(`${await run(positionals, values)}\n`);
        return 0;
      }
      case 'stats': {
        const { values } = parseArgs({
          args: rest,
          options: { url: { type: 'string' }, key: { type: 'string' }, json: { type: 'boolean' } },
        });
        out.write(`${await statsCommand(values)}\n`);
        return 0;
      }
    }
    return 2;
  } catch (e) {
    if (e instanceof CliError) {
      if (e.exitCode === 2) return usage(err, command, e.message);
      err.write(`pushcast ${command}: ${e.message}\n`);
      return e.exitCode;
    }
    if (e instanceof ConfigError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      err.write(`pushcast ${command}: ${(e as Error).message}\n`);
      return 2;
    }
    err.write(`pushcast ${command}: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}

function usage(err: NodeJS.WritableStream, command: string, problem: string): number {
  err.write(`pushcast: ${problem}\n\n${HELP[command] ?? HELP.main}`);
  return 2;
}
