import { createPublicKey, type JsonWebKey } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { JSONWebKeySet } from 'jose';
import { z } from 'zod';
import { configSchema, type Config, type ConfigInput } from './schema.js';
import { DEV_API_KEY, DEV_JWT_SECRET, EXAMPLE_SECRETS } from './development.js';

/** A setting that stops the start; the message is one line naming the key and the rule. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

// 'string-or-empty': a string for which an empty value means something (turns a feature off).
type EnvKind = 'string' | 'string-or-empty' | 'int' | 'number' | 'bool' | 'list' | 'origins';
/** Environment variable -> setting path, and how its text is read (the README table lists them all). */
export const envMap: ReadonlyArray<[string, string, EnvKind]> = [
  ['NODE_ENV', 'env', 'string'],
  ['PORT', 'port', 'int'],
  ['HOST', 'host', 'string'],
  ['PUSHCAST_LISTEN_BACKLOG', 'listenBacklog', 'int'],
  ['REDIS_URL', 'redisUrl', 'string'],
  ['REDIS_CLUSTER_NODES', 'redisClusterNodes', 'list'],
  ['REDIS_USERNAME', 'redis.username', 'string'],
  ['REDIS_PASSWORD', 'redis.password', 'string'],
  ['PUSHCAST_REDIS_TLS', 'redis.tls', 'bool'],
  ['PUSHCAST_REDIS_MODE', 'redis.mode', 'string'],
  ['PUSHCAST_REDIS_KEY_PREFIX', 'redis.keyPrefix', 'string'],
  ['PUSHCAST_REDIS_COMMAND_TIMEOUT_MS', 'redis.commandTimeoutMs', 'int'],
  ['PUSHCAST_JWT_SECRET', 'jwt.secret', 'string'],
  ['PUSHCAST_JWT_PUBLIC_KEY', 'jwt.publicKey', 'string'],
  ['PUSHCAST_JWT_JWKS_FILE', 'jwt.jwksFile', 'string'],
  ['PUSHCAST_JWT_ALGORITHMS', 'jwt.algorithms', 'list'],
  ['PUSHCAST_JWT_ISSUER', 'jwt.issuer', 'string'],
  ['PUSHCAST_JWT_AUDIENCE', 'jwt.audience', 'list'],
  ['PUSHCAST_JWT_ALLOW_NO_EXP', 'jwt.allowNoExp', 'bool'],
  ['PUSHCAST_JWT_CLOCK_TOLERANCE_S', 'jwt.clockToleranceS', 'int'],
  ['PUSHCAST_PUBLIC_CHANNELS', 'publicChannels', 'list'],
  ['PUSHCAST_SOCKET_PATH', 'socketPath', 'string'],
  ['PUSHCAST_SOCKET_TRANSPORTS', 'socketTransports', 'list'],
  ['PUSHCAST_SOCKET_DIRECT', 'socketDirect', 'bool'],
  ['PUSHCAST_PHOENIX_PATH', 'phoenixPath', 'string-or-empty'],
  ['PUSHCAST_HOOKS', 'hooks', 'string'],
  ['PUSHCAST_CORS_ORIGINS', 'corsOrigins', 'origins'],
  ['LOG_LEVEL', 'logLevel', 'string'],
  ['PUSHCAST_MAX_DATA_BYTES', 'limits.maxDataBytes', 'int'],
  ['PUSHCAST_MAX_BODY_BYTES', 'limits.maxBodyBytes', 'int'],
  ['PUSHCAST_MAX_DATA_DEPTH', 'limits.maxDataDepth', 'int'],
  ['PUSHCAST_MAX_CHANNELS_PER_PUSH', 'limits.maxChannelsPerPush', 'int'],
  ['PUSHCAST_MAX_BATCH', 'limits.maxBatch', 'int'],
  ['PUSHCAST_MAX_CHANNELS_PER_SOCKET', 'limits.maxChannelsPerSocket', 'int'],
  ['PUSHCAST_SOCKET_EVENTS_PER_S', 'limits.socketEventsPerSecond', 'number'],
  ['PUSHCAST_SOCKET_EVENT_BURST', 'limits.socketEventBurst', 'int'],
  ['PUSHCAST_MAX_CONNECTIONS', 'limits.maxConnections', 'int'],
  ['PUSHCAST_MAX_CONNECTIONS_PER_USER', 'limits.maxConnectionsPerUser', 'int'],
  ['PUSHCAST_CONNECT_RATE_PER_S', 'limits.connectRatePerSecond', 'number'],
  ['PUSHCAST_MAX_SOCKET_BUFFER_KB', 'limits.maxSocketBufferKb', 'int'],
  ['PUSHCAST_MEMORY_HISTORY_MB', 'memory.historyMb', 'number'],
  ['PUSHCAST_MEMORY_IDEMPOTENCY_MB', 'memory.idempotencyMb', 'number'],
  ['PUSHCAST_IDEMPOTENCY_KEYS_PER_API_KEY', 'idempotencyKeysPerApiKey', 'int'],
  ['PUSHCAST_IDEMPOTENCY_TTL_S', 'idempotencyTtlS', 'int'],
  ['PUSHCAST_RATE_LIMIT_PER_S', 'limits.pushesPerSecond', 'number'],
  ['PUSHCAST_RATE_LIMIT_BURST', 'limits.pushBurst', 'int'],
  ['PUSHCAST_HISTORY_SIZE', 'history.size', 'int'],
  ['PUSHCAST_HISTORY_TTL_S', 'history.ttlS', 'int'],
  ['PUSHCAST_MAX_INFLIGHT', 'maxInflight', 'int'],
  ['PUSHCAST_WEBHOOK_URL', 'webhooks.url', 'string'],
  ['PUSHCAST_WEBHOOK_SECRET', 'webhooks.secret', 'string'],
  ['PUSHCAST_WEBHOOK_EVENTS', 'webhooks.events', 'list'],
  ['PUSHCAST_WEBHOOK_VACATE_DELAY_MS', 'webhooks.vacateDelayMs', 'int'],
  ['PUSHCAST_WEBHOOK_BATCH_MAX', 'webhooks.batchMax', 'int'],
  ['PUSHCAST_WEBHOOK_MAX_PENDING', 'webhooks.maxPending', 'int'],
  ['PUSHCAST_WEBHOOK_TIMEOUT_MS', 'webhooks.timeoutMs', 'int'],
  ['PUSHCAST_WEBHOOK_NODE_TIMEOUT_MS', 'webhooks.nodeTimeoutMs', 'int'],
  ['PUSHCAST_SHUTDOWN_DELAY_MS', 'shutdown.delayMs', 'int'],
  ['PUSHCAST_DRAIN_TIMEOUT_MS', 'shutdown.drainTimeoutMs', 'int'],
  ['PUSHCAST_DISCONNECT_ON_SHUTDOWN', 'shutdown.disconnect', 'bool'],
  ['PUSHCAST_DISCONNECT_SPREAD_MS', 'shutdown.disconnectSpreadMs', 'int'],
];

/** What `loadConfig` found, including which development secrets it filled in. */
export interface LoadedConfig {
  config: Config;
  /**
   * Development secrets in use, for the first-run banner: both or neither, only outside
   * production and only when no API key and no JWT key of any kind was configured.
   */
  development: { apiKey?: string; jwtSecret?: string };
}

/**
 * Builds the settings: built-in defaults < `config/<NODE_ENV>.json` (or the file named by
 * `PUSHCAST_CONFIG`) < environment variables. Throws {@link ConfigError} naming the bad key.
 */
export function loadConfig(
  env: NodeJS.ProcessEnv = process.env,
  cwd: string = process.cwd(),
): LoadedConfig {
  const fromFile = readConfigFile(env, cwd);
  const { values: fromEnv, origin } = readEnv(env);
  const merged = deepMerge(fromFile, fromEnv);
  const apiKeysFromEnv = parseApiKeysEnv(env.PUSHCAST_API_KEYS);
  if (apiKeysFromEnv.length > 0) {
    // Keys add up: the file's (possibly channel-limited) keys and the environment's full keys.
    const fileKeys = Array.isArray(merged.apiKeys) ? (merged.apiKeys as unknown[]) : [];
    merged.apiKeys = [...fileKeys, ...apiKeysFromEnv];
    // Blame the environment only for its own entries: a bad key from the file is named by path.
    apiKeysFromEnv.forEach((_, i) =>
      origin.set(`apiKeys.${fileKeys.length + i}`, 'PUSHCAST_API_KEYS'),
    );
  }
  return finish(merged, origin);
}

/** Validates settings given in code (embedding), with the same defaults and rules. */
export function buildConfig(input: ConfigInput = {}): LoadedConfig {
  return finish(input, new Map());
}

function finish(input: ConfigInput, origin: Map<string, string>): LoadedConfig {
  const parsed = configSchema.safeParse(input);
  if (!parsed.success) throw new ConfigError(describeIssue(parsed.error, origin));
  const config = parsed.data;
  const development: LoadedConfig['development'] = {};
  const hasApiKey = config.apiKeys.length > 0;
  const hasJwtKey =
    config.jwt.secret !== undefined ||
    config.jwt.publicKey !== undefined ||
    config.jwt.jwksFile !== undefined;

  if (config.env === 'production') {
    if (!hasApiKey)
      throw new ConfigError('invalid setting PUSHCAST_API_KEYS (apiKeys): required in production');
    if (!hasJwtKey)
      throw new ConfigError(
        'invalid setting PUSHCAST_JWT_SECRET (jwt): production needs PUSHCAST_JWT_SECRET, PUSHCAST_JWT_PUBLIC_KEY or PUSHCAST_JWT_JWKS_FILE',
      );
    refuseExampleSecrets(config, origin);
  } else if (!hasApiKey && !hasJwtKey) {
    // The zero-setting first run, and only it: the public development secrets, both together.
    config.apiKeys = [{ key: DEV_API_KEY, id: 'development' }];
    config.jwt.secret = DEV_JWT_SECRET;
    development.apiKey = DEV_API_KEY;
    development.jwtSecret = DEV_JWT_SECRET;
  } else if (!hasJwtKey) {
    // Half-configured: filling in the public development secret would let anyone join any channel.
    throw new ConfigError(
      'invalid setting PUSHCAST_JWT_SECRET (jwt): API keys are set, so a JWT key is required: set PUSHCAST_JWT_SECRET, PUSHCAST_JWT_PUBLIC_KEY or PUSHCAST_JWT_JWKS_FILE (development secrets are used only when neither API keys nor a JWT key is set)',
    );
  } else if (!hasApiKey) {
    throw new ConfigError(
      'invalid setting PUSHCAST_API_KEYS (apiKeys): a JWT key is set, so API keys are required: set PUSHCAST_API_KEYS or apiKeys in the config file (development secrets are used only when neither API keys nor a JWT key is set)',
    );
  }
  checkJwtKeys(config.jwt);
  checkRedisSettings(config);
  checkPhoenixPath(config);
  // Unsigned webhooks could be forged by anyone who can reach the receiver.
  if (config.webhooks.url !== undefined && config.webhooks.secret === undefined)
    throw new ConfigError(
      'invalid setting PUSHCAST_WEBHOOK_SECRET (webhooks.secret): required with PUSHCAST_WEBHOOK_URL (every request is signed with it)',
    );
  config.jwt.algorithms ??= config.jwt.secret ? ['HS256'] : ['RS256', 'ES256'];
  const symmetric = config.jwt.algorithms.filter((a) => a.startsWith('HS'));
  if (config.jwt.secret && symmetric.length !== config.jwt.algorithms.length)
    throw new ConfigError(
      'invalid setting PUSHCAST_JWT_ALGORITHMS (jwt.algorithms): a JWT secret goes with HS256/HS384/HS512 only',
    );
  if (!config.jwt.secret && symmetric.length > 0)
    throw new ConfigError(
      'invalid setting PUSHCAST_JWT_ALGORITHMS (jwt.algorithms): HS* algorithms need PUSHCAST_JWT_SECRET',
    );
  // A JWKS file that is missing, unreadable or not a key set stops the start here, not later.
  if (config.jwt.jwksFile !== undefined) readJwksFile(config.jwt.jwksFile);
  const ids = new Set<string>();
  config.apiKeys.forEach((k, i) => {
    k.id ??= `key-${i + 1}`;
    if (ids.has(k.id))
      throw new ConfigError(`invalid setting apiKeys.${i}.id: duplicate key id "${k.id}"`);
    ids.add(k.id);
  });
  return { config, development };
}

/**
 * Exactly one kind of JWT key: a secret, a PEM public key or a JWKS file. Throws
 * {@link ConfigError} naming the settings that conflict.
 */
export function checkJwtKeys(jwt: Pick<Config['jwt'], 'secret' | 'publicKey' | 'jwksFile'>): void {
  if (jwt.jwksFile !== undefined && (jwt.secret !== undefined || jwt.publicKey !== undefined))
    throw new ConfigError(
      'invalid setting PUSHCAST_JWT_JWKS_FILE (jwt.jwksFile): set only one of PUSHCAST_JWT_SECRET, PUSHCAST_JWT_PUBLIC_KEY, PUSHCAST_JWT_JWKS_FILE',
    );
  if (jwt.secret !== undefined && jwt.publicKey !== undefined)
    throw new ConfigError(
      'invalid setting PUSHCAST_JWT_PUBLIC_KEY (jwt.publicKey): set only one of PUSHCAST_JWT_SECRET, PUSHCAST_JWT_PUBLIC_KEY, PUSHCAST_JWT_JWKS_FILE',
    );
}

/**
 * The Phoenix endpoint (`<phoenixPath>/websocket`) must not fall under the Socket.IO path, which
 * engine.io takes whole (every URL starting with it): same path, or under it, stops the start.
 */
function checkPhoenixPath(config: Pick<Config, 'socketPath' | 'phoenixPath'>): void {
  if (config.phoenixPath === '') return;
  const endpoint = `${config.phoenixPath.replace(/\/+$/, '')}/websocket`;
  if (endpoint.startsWith(`${config.socketPath.replace(/\/$/, '')}/`))
    throw new ConfigError(
      `invalid setting PUSHCAST_PHOENIX_PATH (phoenixPath): "${config.phoenixPath}" is the same as, or under, PUSHCAST_SOCKET_PATH (socketPath) "${config.socketPath}"; give them different paths, or set PUSHCAST_PHOENIX_PATH to empty to turn the Phoenix endpoint off`,
    );
}

/**
 * One Redis form at a time: a URL (one Redis) or cluster seeds; a Redis Cluster only with sharded
 * pub/sub (classic pub/sub is broadcast to every shard). Throws {@link ConfigError} naming both.
 */
export function checkRedisSettings(
  config: Pick<Config, 'redisUrl' | 'redisClusterNodes'> & { redis: Pick<Config['redis'], 'mode'> },
): void {
  if (config.redisUrl !== undefined && config.redisClusterNodes !== undefined)
    throw new ConfigError(
      'invalid setting REDIS_CLUSTER_NODES (redisClusterNodes): set only one of REDIS_URL and REDIS_CLUSTER_NODES',
    );
  if (config.redisClusterNodes !== undefined && config.redis.mode === 'classic')
    throw new ConfigError(
      'invalid setting PUSHCAST_REDIS_MODE (redis.mode): classic pub/sub does not run on a Redis Cluster (REDIS_CLUSTER_NODES); use sharded',
    );
}

/**
 * Production refuses every key and secret of the repository's examples and docs: they are public.
 * The message names the setting, never the value.
 */
function refuseExampleSecrets(config: Config, origin: Map<string, string>): void {
  config.apiKeys.forEach((k, i) => {
    if (!EXAMPLE_SECRETS.has(k.key)) return;
    const path = `apiKeys.${i}.key`;
    const envName = origin.get(`apiKeys.${i}`);
    const what =
      k.key === DEV_API_KEY
        ? 'the development API key'
        : "this key appears in pushcast's examples or docs, it";
    throw new ConfigError(
      `invalid setting ${envName ? `${envName} (${path})` : path}: ${what} is public and not allowed in production; use a long random key`,
    );
  });
  const secret = config.jwt.secret;
  if (secret !== undefined && EXAMPLE_SECRETS.has(secret)) {
    const what =
      secret === DEV_JWT_SECRET
        ? 'the development secret'
        : "this secret appears in pushcast's examples or docs, it";
    throw new ConfigError(
      `invalid setting PUSHCAST_JWT_SECRET (jwt.secret): ${what} is public and not allowed in production; use a random secret of 32+ characters`,
    );
  }
}

/**
 * Reads and checks the JWKS file of `jwt.jwksFile`: a JSON object `{ "keys": [...] }` holding at
 * least one key, every key a public key Node can use. Throws {@link ConfigError} naming the
 * setting and the file (never its content).
 */
export function readJwksFile(path: string): JSONWebKeySet {
  const setting = 'invalid setting PUSHCAST_JWT_JWKS_FILE (jwt.jwksFile)';
  const full = resolve(path);
  let text: string;
  try {
    text = readFileSync(full, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(
      code === 'ENOENT'
        ? `${setting}: no file at ${full}`
        : `${setting}: cannot read ${full} (${code ?? 'read error'})`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${setting}: ${full} is not valid JSON (${jsonErrorPlace(text, err)})`);
  }
  const keys = isPlainObject(value) ? value.keys : undefined;
  if (!Array.isArray(keys) || keys.length === 0)
    throw new ConfigError(
      `${setting}: ${full} is not a JWKS (expected {"keys": [...]} with at least one key)`,
    );
  keys.forEach((jwk: unknown, i) => {
    try {
      if (!isPlainObject(jwk)) throw new Error('not an object');
      createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
    } catch {
      throw new ConfigError(`${setting}: key ${i} of ${full} is not a usable public key`);
    }
  });
  return value as JSONWebKeySet;
}

function readConfigFile(env: NodeJS.ProcessEnv, cwd: string): Record<string, unknown> {
  const named = env.PUSHCAST_CONFIG;
  const path = named
    ? resolve(cwd, named)
    : resolve(cwd, 'config', `${env.NODE_ENV ?? 'development'}.json`);
  if (!existsSync(path)) {
    if (named) throw new ConfigError(`invalid setting PUSHCAST_CONFIG: no file at ${path}`);
    return {};
  }
  let value: unknown;
  const text = readFileSync(path, 'utf8');
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(
      `invalid setting PUSHCAST_CONFIG: ${path} is not valid JSON (${jsonErrorPlace(text, err)})`,
    );
  }
  if (!isPlainObject(value))
    throw new ConfigError(`invalid setting PUSHCAST_CONFIG: ${path} must hold a JSON object`);
  return value;
}

/**
 * Where JSON.parse failed, as a line and column. Never its message: V8 quotes the text around the
 * error, which may be a secret of the file and may span lines.
 */
function jsonErrorPlace(text: string, err: unknown): string {
  const match = /at position (\d+)/.exec((err as Error).message);
  const position = match ? Number(match[1]) : undefined;
  if (position === undefined) {
    if (/end of JSON input/.test((err as Error).message)) return 'unexpected end of file';
    return 'syntax error';
  }
  const before = text.slice(0, position);
  const line = before.split('\n').length;
  const column = position - before.lastIndexOf('\n');
  return `syntax error at line ${line}, column ${column}`;
}

function readEnv(env: NodeJS.ProcessEnv): {
  values: Record<string, unknown>;
  origin: Map<string, string>;
} {
  const values: Record<string, unknown> = {};
  const origin = new Map<string, string>();
  for (const [name, path, kind] of envMap) {
    const raw = env[name];
    if (raw === undefined || (raw === '' && kind !== 'string-or-empty')) continue;
    setPath(values, path, parseEnvValue(name, path, kind, raw));
    origin.set(path, name);
  }
  return { values, origin };
}

function parseEnvValue(name: string, path: string, kind: EnvKind, raw: string): unknown {
  switch (kind) {
    case 'string':
    case 'string-or-empty':
      return raw;
    case 'int': {
      if (!/^-?\d+$/.test(raw.trim()))
        throw new ConfigError(
          `invalid setting ${name} (${path}): expected a whole number, got "${raw}"`,
        );
      return Number(raw.trim());
    }
    case 'number': {
      if (!/^\d+(\.\d+)?$/.test(raw.trim()))
        throw new ConfigError(`invalid setting ${name} (${path}): expected a number, got "${raw}"`);
      return Number(raw.trim());
    }
    case 'bool': {
      const v = raw.trim().toLowerCase();
      if (['true', '1', 'yes'].includes(v)) return true;
      if (['false', '0', 'no'].includes(v)) return false;
      throw new ConfigError(
        `invalid setting ${name} (${path}): expected true or false, got "${raw}"`,
      );
    }
    case 'list':
      return splitList(raw);
    case 'origins':
      return raw.trim() === '*' ? '*' : splitList(raw);
  }
}

function parseApiKeysEnv(raw: string | undefined): Array<{ key: string; id: string }> {
  if (!raw) return [];
  return splitList(raw).map((key, i) => ({ key, id: `env-${i + 1}` }));
}

function splitList(raw: string): string[] {
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

function describeIssue(error: z.ZodError, origin: Map<string, string>): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid settings';
  const path = issue.path.map(String).join('.');
  // Name the environment variable when the value came from one (apiKeys.0.key -> PUSHCAST_API_KEYS).
  let envName: string | undefined;
  for (const [p, name] of origin) if (path === p || path.startsWith(`${p}.`)) envName = name;
  const key = envName ? `${envName} (${path})` : path || '(root)';
  // Never echo a secret back: describe the rule, not the value.
  return `invalid setting ${key}: ${issue.message}`;
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    const next = node[part];
    if (!isPlainObject(next)) node[part] = {};
    node = node[part] as Record<string, unknown>;
  }
  node[parts[parts.length - 1]!] = value;
}

function deepMerge(
  base: Record<string, unknown>,
  over: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = isPlainObject(b) && isPlainObject(v) ? deepMerge(b, v) : v;
  }
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
