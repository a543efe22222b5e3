import { cliSettings } from '../config/cli-settings.js';

/** A failed API call, with the exit code the CLI should end with. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

interface ApiFlags {
  url?: string | undefined;
  key?: string | undefined;
}

async function call(flags: ApiFlags, path: string, init: RequestInit = {}): Promise<unknown> {
  const { url, key } = cliSettings(flags);
  if (!key) throw new CliError('no API key: pass --key or set PUSHCAST_API_KEY', 2);
  let res: Response;
  try {
    res = await fetch(`${url}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      signal: AbortSignal.timeout(10_000),
    });
  } catch (err) {
    throw new CliError(`cannot reach ${url}: ${(err as Error).message}`, 1);
  }
  const body = (await res.json().catch(() => ({}))) as { error?: string; code?: string };
  if (!res.ok)
    throw new CliError(`${res.status} ${body.code ?? ''}: ${body.error ?? 'request failed'}`, 1);
  return body;
}

/** `pushcast push <channel> <event> <json>`: prints the push id. */
export async function pushCommand(args: string[], flags: ApiFlags): Promise<string> {
  const [channelArg, event, json] = args;
  if (!channelArg || !event || json === undefined)
    throw new CliError('usage: pushcast push <channel[,channel...]> <event> <json>', 2);
  let data: unknown;
  try {
    data = JSON.parse(json);
  } catch {
    throw new CliError(`<json> is not valid JSON: ${json}`, 2);
  }
  const channels = channelArg.split(',').filter(Boolean);
  const channel = channels.length === 1 ? channels[0] : channels;
  const body = (await call(flags, '/api/push', {
    method: 'POST',
    body: JSON.stringify({ channel, event, data }),
  })) as {
    id: string;
  };
  return body.id;
}

/** `pushcast disconnect <userId>`: closes the user's connections; prints how many. */
export async function disconnectCommand(args: string[], flags: ApiFlags): Promise<string> {
  const [userId, extra] = args;
  if (!userId || extra !== undefined) throw new CliError('usage: pushcast disconnect <userId>', 2);
  const body = (await call(flags, `/api/users/${encodeURIComponent(userId)}/disconnect`, {
    method: 'POST',
  })) as { disconnected: number };
  return `${body.disconnected} connection(s) closed`;
}

/** `pushcast unsubscribe <channel> <userId>`: takes the user out of the channel; prints how many. */
export async function unsubscribeCommand(args: string[], flags: ApiFlags): Promise<string> {
  const [channel, userId, extra] = args;
  if (!channel || !userId || extra !== undefined)
    throw new CliError('usage: pushcast unsubscribe <channel> <userId>', 2);
  const body = (await call(flags, `/api/channels/${encodeURIComponent(channel)}/unsubscribe`, {
    method: 'POST',
    body: JSON.stringify({ userId }),
  })) as { unsubscribed: number };
  return `${body.unsubscribed} connection(s) unsubscribed`;
}

interface Stats {
  nodes: Array<{
    id: string;
    version: string;
    state: string;
    uptimeS: number;
    sockets: number;
    channels: number;
    rates: { requested10s: number; delivered10s: number };
  }>;
  totals: { nodes: number; sockets: number };
}

/** `pushcast stats`: the cluster's nodes as a table (or JSON with --json). */
export async function statsCommand(
  flags: ApiFlags & { json?: boolean | undefined },
): Promise<string> {
  const stats = (await call(flags, '/api/stats')) as Stats;
  if (flags.json) return JSON.stringify(stats, null, 2);
  const rows = [
    ['node', 'version', 'state', 'uptime', 'sockets', 'channels', 'req/s', 'del/s'],
    ...stats.nodes.map((n) => [
      n.id,
      n.version,
      n.state,
      `${n.uptimeS}s`,
      String(n.sockets),
      String(n.channels),
      n.rates.requested10s.toFixed(1),
      n.rates.delivered10s.toFixed(1),
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) =>
    r
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd(),
  );
  return [...lines, `${stats.totals.nodes} node(s), ${stats.totals.sockets} socket(s)`].join('\n');
}
