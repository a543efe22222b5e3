import { generateKeyPairSync } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, buildConfig, loadConfig } from '../../src/config/load.js';
import { DEV_API_KEY, DEV_JWT_SECRET, EXAMPLE_SECRETS } from '../../src/config/development.js';
import { spawnNode } from '../support/process.js';

const KEY = 'prod-key-0123456789abcdef';
const SECRET = 'prod-jwt-secret-0123456789abcdef-0123456789';
/** A full set of real settings: API keys and a JWT key. */
const KEYS = { PUSHCAST_API_KEYS: KEY, PUSHCAST_JWT_SECRET: SECRET };
const ROOT = resolve(import.meta.dirname, '../..');
type Env = Record<string, string>;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'pushcast-config-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Loads settings with only `env` (no process env) from the empty temp dir. */
function load(env: Record<string, string>, cwd = dir): ReturnType<typeof loadConfig> {
  return loadConfig(env, cwd);
}

/** The ConfigError `fn` throws (fails the test if it throws nothing or something else). */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError, nothing was thrown');
}

function writeJson(name: string, value: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof value === 'string' ? value : JSON.stringify(value));
  return path;
}

describe('loadConfig', () => {
  it('fills every default, with development secrets outside production', () => {
    const { config, development } = load({});
    expect(config).toMatchObject({
      env: 'development',
      host: '0.0.0.0',
      port: 4000,
      redis: { mode: 'sharded', keyPrefix: 'pc', commandTimeoutMs: 1000 },
      publicChannels: [],
      socketPath: '/socket.io',
      corsOrigins: '*',
      logLevel: 'info',
      limits: {
        maxBodyBytes: 4 * 1024 * 1024,
        maxDataBytes: 64 * 1024,
        maxChannelsPerPush: 100,
        maxBatch: 100,
      },
      idempotencyTtlS: 86_400,
      history: { size: 100, ttlS: 300, channels: [] },
      maxInflight: 50_000,
      shutdown: { delayMs: 0, drainTimeoutMs: 10_000, disconnect: false },
    });
    expect(config.redisUrl).toBeUndefined();
    expect(config.apiKeys).toEqual([{ key: DEV_API_KEY, id: 'development' }]);
    expect(config.jwt.secret).toBe(DEV_JWT_SECRET);
    expect(config.jwt.algorithms).toEqual(['HS256']);
    expect(development).toEqual({ apiKey: DEV_API_KEY, jwtSecret: DEV_JWT_SECRET });
  });

  it('reads the environment variables', () => {
    const { config, development } = load({
      PORT: '8080',
      HOST: '127.0.0.1',
      REDIS_URL: 'redis://r:6379',
      PUSHCAST_REDIS_MODE: 'classic',
      PUSHCAST_API_KEYS: `${KEY}, other-key-0123456789abcdef`,
      PUSHCAST_JWT_SECRET: SECRET,
      PUSHCAST_MAX_DATA_BYTES: '2048',
      PUSHCAST_DISCONNECT_ON_SHUTDOWN: 'yes',
      LOG_LEVEL: 'warn',
    });
    expect(config.port).toBe(8080);
    expect(config.host).toBe('127.0.0.1');
    expect(config.redisUrl).toBe('redis://r:6379');
    expect(config.redis.mode).toBe('classic');
    expect(config.apiKeys).toEqual([
      { key: KEY, id: 'env-1' },
      { key: 'other-key-0123456789abcdef', id: 'env-2' },
    ]);
    expect(config.jwt.secret).toBe(SECRET);
    expect(config.limits.maxDataBytes).toBe(2048);
    expect(config.shutdown.disconnect).toBe(true);
    expect(config.logLevel).toBe('warn');
    expect(development).toEqual({});
  });

  it('refuses PORT=abc naming PORT', () => {
    const err = configError(() => load({ PORT: 'abc' }));
    expect(err.message).toMatch(/^invalid setting PORT\b/);
    expect(err.message).toContain('whole number');
    expect(err.message).not.toContain('\n');
  });

  it('webhooks: a URL needs a secret (unsigned events could be forged); both read from the env', () => {
    const err = configError(() => load({ PUSHCAST_WEBHOOK_URL: 'https://hooks.example.com/in' }));
    expect(err.message).toMatch(/^invalid setting PUSHCAST_WEBHOOK_SECRET \(webhooks.secret\)/);
    const { config } = load({
      PUSHCAST_WEBHOOK_URL: 'https://hooks.example.com/in',
      PUSHCAST_WEBHOOK_SECRET: 'hook-secret-0123456789',
      PUSHCAST_WEBHOOK_EVENTS: 'channel_occupied,channel_vacated',
      PUSHCAST_WEBHOOK_VACATE_DELAY_MS: '0',
    });
    expect(config.webhooks).toMatchObject({
      url: 'https://hooks.example.com/in',
      events: ['channel_occupied', 'channel_vacated'],
      vacateDelayMs: 0,
      batchMax: 100,
    });
    const bad = configError(() => load({ PUSHCAST_WEBHOOK_EVENTS: 'channel_occupied,nope' }));
    expect(bad.message).toMatch(/^invalid setting PUSHCAST_WEBHOOK_EVENTS/);
    const url = configError(() =>
      load({ PUSHCAST_WEBHOOK_URL: 'ftp://x', PUSHCAST_WEBHOOK_SECRET: 'hook-secret-0123456789' }),
    );
    expect(url.message).toMatch(/^invalid setting PUSHCAST_WEBHOOK_URL/);
  });

  it('refuses an out-of-range PORT naming PORT', () => {
    const err = configError(() => load({ PORT: '70000' }));
    expect(err.message).toMatch(/^invalid setting PORT \(port\)/);
  });

  it('refuses a short API key naming PUSHCAST_API_KEYS and the 16-character rule, never the key', () => {
    const short = 'shortkey123';
    const err = configError(() => load({ PUSHCAST_API_KEYS: `${KEY},${short}` }));
    expect(err.message).toContain('PUSHCAST_API_KEYS');
    expect(err.message).toContain('16 characters');
    expect(err.message).not.toContain(short);
    expect(err.message).not.toContain(KEY);
  });

  it('does not blame PUSHCAST_API_KEYS for a short key that came from the file', () => {
    const file = writeJson('short-key.json', { apiKeys: [{ key: 'tooshort' }] });
    const err = configError(() => load({ PUSHCAST_CONFIG: file, PUSHCAST_API_KEYS: KEY }));
    expect(err.message).toMatch(/^invalid setting apiKeys\.0\.key: /);
    expect(err.message).not.toContain('tooshort');
  });

  it('never echoes a short JWT secret', () => {
    const err = configError(() => load({ PUSHCAST_JWT_SECRET: 'secret-value-xyz' }));
    expect(err.message).toMatch(/^invalid setting PUSHCAST_JWT_SECRET \(jwt\.secret\): /);
    expect(err.message).toContain('32 characters');
    expect(err.message).not.toContain('secret-value-xyz');
  });

  it('refuses production without API keys', () => {
    const err = configError(() => load({ NODE_ENV: 'production', PUSHCAST_JWT_SECRET: SECRET }));
    expect(err.message).toMatch(/^invalid setting PUSHCAST_API_KEYS\b/);
    expect(err.message).toContain('production');
  });

  it('refuses production without a JWT key', () => {
    const err = configError(() => load({ NODE_ENV: 'production', PUSHCAST_API_KEYS: KEY }));
    expect(err.message).toMatch(/^invalid setting PUSHCAST_JWT_SECRET\b/);
  });

  it('refuses production with the development API key', () => {
    const err = configError(() =>
      load({ NODE_ENV: 'production', PUSHCAST_API_KEYS: DEV_API_KEY, PUSHCAST_JWT_SECRET: SECRET }),
    );
    expect(err.message).toMatch(/^invalid setting PUSHCAST_API_KEYS\b/);
    expect(err.message).toContain('development API key');
    expect(err.message).not.toContain(DEV_API_KEY);
  });

  it('refuses production with the development JWT secret', () => {
    const err = configError(() =>
      load({ NODE_ENV: 'production', PUSHCAST_API_KEYS: KEY, PUSHCAST_JWT_SECRET: DEV_JWT_SECRET }),
    );
    expect(err.message).toMatch(/^invalid setting PUSHCAST_JWT_SECRET\b/);
    expect(err.message).not.toContain(DEV_JWT_SECRET);
  });

  it('accepts production with keys and a secret, filling no development secret', () => {
    const { config, development } = load({
      NODE_ENV: 'production',
      PUSHCAST_API_KEYS: KEY,
      PUSHCAST_JWT_SECRET: SECRET,
    });
    expect(config.env).toBe('production');
    expect(config.apiKeys).toEqual([{ key: KEY, id: 'env-1' }]);
    expect(config.jwt.secret).toBe(SECRET);
    expect(development).toEqual({});
  });

  it('reads the file named by PUSHCAST_CONFIG, with channel-limited keys, env over file', () => {
    const file = writeJson('settings.json', {
      port: 5000,
      host: '127.0.0.1',
      logLevel: 'debug',
      apiKeys: [{ key: 'orders-key-0123456789abcdef', id: 'orders', channels: ['orders:*'] }],
      limits: { maxDataBytes: 1024, maxBatch: 10 },
      publicChannels: ['news:*'],
    });
    const { config } = load({
      PUSHCAST_CONFIG: file,
      PUSHCAST_JWT_SECRET: SECRET,
      PORT: '6000',
      PUSHCAST_MAX_DATA_BYTES: '4096',
    });
    expect(config.port).toBe(6000);
    expect(config.host).toBe('127.0.0.1');
    expect(config.logLevel).toBe('debug');
    expect(config.limits.maxDataBytes).toBe(4096);
    // Merged deeply: the file's other limits stay.
    expect(config.limits.maxBatch).toBe(10);
    expect(config.limits.maxChannelsPerPush).toBe(100);
    expect(config.publicChannels).toEqual(['news:*']);
    expect(config.apiKeys).toEqual([
      { key: 'orders-key-0123456789abcdef', id: 'orders', channels: ['orders:*'] },
    ]);
  });

  it('adds PUSHCAST_API_KEYS to the keys of the file', () => {
    const file = writeJson('keys.json', {
      apiKeys: [{ key: 'orders-key-0123456789abcdef', channels: ['orders:*'] }],
    });
    const { config } = load({ PUSHCAST_CONFIG: file, ...KEYS });
    expect(config.apiKeys).toEqual([
      { key: 'orders-key-0123456789abcdef', id: 'key-1', channels: ['orders:*'] },
      { key: KEY, id: 'env-1' },
    ]);
  });

  it('resolves PUSHCAST_CONFIG against cwd, and reads config/<NODE_ENV>.json by default', () => {
    const cwd = mkdtempSync(join(tmpdir(), 'pushcast-cwd-'));
    try {
      mkdirSync(join(cwd, 'config'));
      writeFileSync(join(cwd, 'config', 'test.json'), JSON.stringify({ port: 4100 }));
      writeFileSync(join(cwd, 'mine.json'), JSON.stringify({ port: 4200 }));
      expect(load({ NODE_ENV: 'test' }, cwd).config.port).toBe(4100);
      expect(load({ NODE_ENV: 'test', PUSHCAST_CONFIG: 'mine.json' }, cwd).config.port).toBe(4200);
      // No config/development.json: defaults.
      expect(load({}, cwd).config.port).toBe(4000);
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });

  it('refuses PUSHCAST_CONFIG pointing nowhere', () => {
    const err = configError(() => load({ PUSHCAST_CONFIG: 'nope/missing.json' }));
    expect(err.message).toBe(
      `invalid setting PUSHCAST_CONFIG: no file at ${resolve(dir, 'nope/missing.json')}`,
    );
  });

  it('refuses a config file that is not valid JSON, in one line', () => {
    const file = writeJson('broken.json', '{ "port": 4000,\n  oops }');
    const err = configError(() => load({ PUSHCAST_CONFIG: file }));
    expect(err.message).toMatch(
      /^invalid setting PUSHCAST_CONFIG: .*broken\.json is not valid JSON/,
    );
    expect(err.message).not.toContain('\n');
  });

  it('never quotes the text of a broken config file (it may hold a secret)', () => {
    const unquoted = writeJson('unquoted.json', '{ "jwt": { "secret": hunter2-unquoted } }');
    const err1 = configError(() => load({ PUSHCAST_CONFIG: unquoted }));
    expect(err1.message).toMatch(/is not valid JSON/);
    expect(err1.message).not.toContain('hunter2');
    const multiline = writeJson('multiline.json', '{\n  "a": 1,\n  "b": "hunter2"\n  "c": 2\n}');
    const err2 = configError(() => load({ PUSHCAST_CONFIG: multiline }));
    expect(err2.message).toMatch(/is not valid JSON \(syntax error at line 4, column 3\)$/);
    expect(err2.message).not.toContain('hunter2');
  });

  it('refuses a config file that holds no object', () => {
    const file = writeJson('array.json', [1, 2]);
    const err = configError(() => load({ PUSHCAST_CONFIG: file }));
    expect(err.message).toContain('must hold a JSON object');
  });

  it('refuses unknown settings in the file', () => {
    const file = writeJson('unknown.json', { prot: 4000 });
    const err = configError(() => load({ PUSHCAST_CONFIG: file }));
    expect(err.message).toContain('prot');
  });

  it('refuses PUSHCAST_JWT_ALGORITHMS=RS256 with only a secret', () => {
    const err = configError(() => load({ ...KEYS, PUSHCAST_JWT_ALGORITHMS: 'RS256' }));
    expect(err.message).toMatch(/^invalid setting PUSHCAST_JWT_ALGORITHMS\b/);
    expect(err.message).toContain('HS256');
  });

  it('refuses an unknown JWT algorithm naming PUSHCAST_JWT_ALGORITHMS', () => {
    const err = configError(() =>
      load({ PUSHCAST_JWT_SECRET: SECRET, PUSHCAST_JWT_ALGORITHMS: 'HS256,none' }),
    );
    expect(err.message).toMatch(/^invalid setting PUSHCAST_JWT_ALGORITHMS \(jwt\.algorithms\.1\)/);
  });

  it('reads PUSHCAST_JWT_ALGORITHMS as a list', () => {
    const { config } = load({ ...KEYS, PUSHCAST_JWT_ALGORITHMS: 'HS256, HS512' });
    expect(config.jwt.algorithms).toEqual(['HS256', 'HS512']);
  });

  it('reads PUSHCAST_PUBLIC_CHANNELS as a list, and refuses a bad pattern naming it', () => {
    expect(load({ PUSHCAST_PUBLIC_CHANNELS: 'news:*, status ,,' }).config.publicChannels).toEqual([
      'news:*',
      'status',
    ]);
    const err = configError(() => load({ PUSHCAST_PUBLIC_CHANNELS: 'ok,bad channel' }));
    expect(err.message).toMatch(/^invalid setting PUSHCAST_PUBLIC_CHANNELS \(publicChannels\.1\)/);
  });

  it('reads PUSHCAST_CORS_ORIGINS as * or a list', () => {
    expect(load({ PUSHCAST_CORS_ORIGINS: '*' }).config.corsOrigins).toBe('*');
    expect(
      load({ PUSHCAST_CORS_ORIGINS: 'https://a.example, https://b.example' }).config.corsOrigins,
    ).toEqual(['https://a.example', 'https://b.example']);
  });

  it('refuses a bad LOG_LEVEL naming LOG_LEVEL', () => {
    const err = configError(() => load({ LOG_LEVEL: 'loud' }));
    expect(err.message).toMatch(/^invalid setting LOG_LEVEL \(logLevel\): /);
  });

  it('refuses a bad NODE_ENV naming NODE_ENV', () => {
    const err = configError(() => load({ NODE_ENV: 'prod' }));
    expect(err.message).toMatch(/^invalid setting NODE_ENV \(env\): /);
  });

  it('refuses a bad boolean naming its variable', () => {
    const err = configError(() => load({ PUSHCAST_DISCONNECT_ON_SHUTDOWN: 'maybe' }));
    expect(err.message).toMatch(/^invalid setting PUSHCAST_DISCONNECT_ON_SHUTDOWN\b/);
  });

  it('refuses a REDIS_URL that is not redis://, without echoing it', () => {
    const url = 'http://user:hunter2-password@redis:6379';
    const err = configError(() => load({ REDIS_URL: url }));
    expect(err.message).toMatch(/^invalid setting REDIS_URL \(redisUrl\): /);
    expect(err.message).not.toContain('hunter2');
  });
});

describe('the process with invalid settings', () => {
  it('exits with code 2 and one line on stderr naming PORT', async () => {
    const child = spawnNode({
      script: resolve(import.meta.dirname, '../../src/main.ts'),
      env: { PORT: 'notanumber', LOG_LEVEL: 'silent' },
      cwd: dir,
    });
    try {
      const { code } = await child.exited;
      expect(code).toBe(2);
      expect(child.stderr).toHaveLength(1);
      expect(child.stderr[0]).toMatch(/^pushcast: invalid setting PORT\b/);
      expect(child.stdout).toEqual([]);
    } finally {
      await child[Symbol.asyncDispose]();
    }
  });
});

describe('rate limit from the environment', () => {
  it('reads PUSHCAST_RATE_LIMIT_PER_S and PUSHCAST_RATE_LIMIT_BURST', () => {
    const { config } = loadConfig(
      { PUSHCAST_RATE_LIMIT_PER_S: '5', PUSHCAST_RATE_LIMIT_BURST: '7' },
      '/nonexistent',
    );
    expect(config.limits).toMatchObject({ pushesPerSecond: 5, pushBurst: 7 });
    expect(() => loadConfig({ PUSHCAST_RATE_LIMIT_PER_S: 'fast' }, '/nonexistent')).toThrow(
      /PUSHCAST_RATE_LIMIT_PER_S/,
    );
  });
});

describe('development secrets: only for the zero-setting first run', () => {
  it('are filled in, both together, only when no API key and no JWT key is set (development and test)', () => {
    for (const env of [{}, { NODE_ENV: 'development' }, { NODE_ENV: 'test' }] as Env[]) {
      const { config, development } = load(env);
      expect(config.apiKeys).toEqual([{ key: DEV_API_KEY, id: 'development' }]);
      expect(config.jwt.secret).toBe(DEV_JWT_SECRET);
      expect(development).toEqual({ apiKey: DEV_API_KEY, jwtSecret: DEV_JWT_SECRET });
    }
  });

  it('refuses API keys without a JWT key, naming every JWT key setting (no development secret)', () => {
    for (const env of [
      { PUSHCAST_API_KEYS: KEY },
      { PUSHCAST_API_KEYS: KEY, NODE_ENV: 'test' },
      { PUSHCAST_CONFIG: writeJson('file-keys-only.json', { apiKeys: [{ key: KEY }] }) },
    ] as Env[]) {
      const err = configError(() => load(env));
      expect(err.message).toMatch(/^invalid setting PUSHCAST_JWT_SECRET \(jwt\): /);
      expect(err.message).toContain('PUSHCAST_JWT_PUBLIC_KEY');
      expect(err.message).toContain('PUSHCAST_JWT_JWKS_FILE');
      expect(err.message).not.toContain(KEY);
      expect(err.message).not.toContain('\n');
    }
  });

  it('refuses a JWT key without API keys, naming PUSHCAST_API_KEYS', () => {
    const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' })
      .publicKey.export({ type: 'spki', format: 'pem' })
      .toString();
    for (const env of [
      { PUSHCAST_JWT_SECRET: SECRET },
      { PUSHCAST_JWT_PUBLIC_KEY: pem },
      { PUSHCAST_JWT_SECRET: SECRET, NODE_ENV: 'test' },
    ] as Env[]) {
      const err = configError(() => load(env));
      expect(err.message).toMatch(/^invalid setting PUSHCAST_API_KEYS \(apiKeys\): /);
      expect(err.message).not.toContain(SECRET);
    }
  });

  it('applies the same rule to settings given in code (createPushServer)', () => {
    expect(() => buildConfig({ apiKeys: [{ key: KEY }] })).toThrow(ConfigError);
    expect(() => buildConfig({ jwt: { secret: SECRET } })).toThrow(/PUSHCAST_API_KEYS/);
    expect(buildConfig({}).development).toEqual({
      apiKey: DEV_API_KEY,
      jwtSecret: DEV_JWT_SECRET,
    });
    // Settings that went through the first run once come back unchanged (main.ts does this).
    const first = buildConfig({ env: 'test' }).config;
    expect(buildConfig(first).config.jwt.secret).toBe(DEV_JWT_SECRET);
  });

  it('fills in nothing when both are set', () => {
    const { config, development } = load(KEYS);
    expect(config.apiKeys).toEqual([{ key: KEY, id: 'env-1' }]);
    expect(config.jwt.secret).toBe(SECRET);
    expect(development).toEqual({});
  });
});

/**
 * Secret-looking values in the repository's examples and docs: values of key/secret fields (JSON,
 * YAML, env assignments), `Bearer <x>`, `--key <x>`, and string constants named like KEY or SECRET.
 */
function exampleSecretsIn(text: string): string[] {
  const found: string[] = [];
  const patterns = [
    /["']?\b(?:key|secret|jwtSecret|apiKey|apiKeys|token)["']?[ \t]*:[ \t]*["']([^"']+)["']/gi,
    /\bPUSHCAST_(?:API_KEYS?|JWT_SECRET)["']?[ \t]*[:=][ \t]*["']?([^\s"'`]+)/g,
    // Not `Bearer realm="..."`: that is the WWW-Authenticate challenge, not a credential.
    /\bBearer[ \t]+(?!realm=)([^\s"'`]+)/g,
    /--key[ \t=]+([^\s"'`]+)/g,
    /\bconst[ \t]+\w*(?:KEY|SECRET)\w*[ \t]*=[ \t]*'([^']+)'/g,
  ];
  for (const re of patterns)
    for (const match of text.matchAll(re))
      for (const value of match[1]!.split(',').map((v) => v.trim()))
        // Placeholders and references, not values: `...`, `<api key>`, `${API_KEY}`, `API_KEY`.
        if (value && !/^(\.\.\.|<|\$|\{)/.test(value) && !/^[A-Z_]+$/.test(value))
          found.push(value);
  return found;
}

/** The files whose secrets production must refuse: examples, docs, k8s, bench, the dev constants. */
function exampleFiles(): string[] {
  const listed = [
    'README.md',
    'SECURITY.md',
    'config/example.json',
    'config/README.md',
    'bench/config.json',
    'bench/run.ts',
    'src/config/development.ts',
  ];
  const walk = (dir: string, ext: RegExp): string[] =>
    existsSync(join(ROOT, dir))
      ? readdirSync(join(ROOT, dir), { recursive: true })
          .map(String)
          .filter((f) => ext.test(f))
          .map((f) => join(dir, f))
      : [];
  return [
    ...listed.filter((f) => existsSync(join(ROOT, f))),
    ...walk('k8s', /\.ya?ml$/),
    ...walk('docs', /\.(md|json|ya?ml)$/),
    ...walk('config', /\.json$/),
  ];
}

describe('production refuses the secrets of the examples and docs', () => {
  it('lists every secret-looking value of the examples and docs in EXAMPLE_SECRETS', () => {
    const files = [...new Set(exampleFiles())];
    expect(files).toEqual(
      expect.arrayContaining([
        'README.md',
        'config/example.json',
        'k8s/base/secret.example.yaml',
        'k8s/overlays/dev/secret.yaml',
        'src/config/development.ts',
      ]),
    );
    const seen = new Map<string, string>();
    for (const file of files)
      for (const value of exampleSecretsIn(readFileSync(join(ROOT, file), 'utf8')))
        seen.set(value, file);
    // The scan itself finds what is known to be there (so a passing check means something).
    for (const known of [
      DEV_API_KEY,
      DEV_JWT_SECRET,
      'replace-with-a-long-random-key-1',
      'dev-cluster-jwt-secret-0123456789abcdef',
    ])
      expect(seen.has(known), known).toBe(true);
    const missing = [...seen].filter(([value]) => !EXAMPLE_SECRETS.has(value));
    expect(missing, 'add these to EXAMPLE_SECRETS in src/config/development.ts').toEqual([]);
  });

  it('refuses each of them as an API key, from the environment or the file, never echoing it', () => {
    expect(EXAMPLE_SECRETS.size).toBeGreaterThanOrEqual(10);
    for (const secret of EXAMPLE_SECRETS) {
      const fromEnv = configError(() =>
        load({
          NODE_ENV: 'production',
          PUSHCAST_API_KEYS: `${KEY},${secret}`,
          PUSHCAST_JWT_SECRET: SECRET,
        }),
      );
      expect(fromEnv.message).toMatch(/^invalid setting PUSHCAST_API_KEYS \(apiKeys\.1(\.key)?\)/);
      expect(fromEnv.message).not.toContain(secret);
      expect(fromEnv.message).not.toContain('\n');
      const file = writeJson('prod-example-key.json', { apiKeys: [{ id: 'ops', key: secret }] });
      const fromFile = configError(() =>
        load({ NODE_ENV: 'production', PUSHCAST_CONFIG: file, PUSHCAST_JWT_SECRET: SECRET }),
      );
      expect(fromFile.message).toMatch(/^invalid setting apiKeys\.0\.key: /);
      expect(fromFile.message).not.toContain(secret);
    }
  });

  it('refuses each of them as the JWT secret, never echoing it', () => {
    for (const secret of EXAMPLE_SECRETS) {
      const err = configError(() =>
        load({ NODE_ENV: 'production', PUSHCAST_API_KEYS: KEY, PUSHCAST_JWT_SECRET: secret }),
      );
      // Shorter than 32 characters fails the length rule first; either way, named, never echoed.
      expect(err.message).toMatch(/^invalid setting PUSHCAST_JWT_SECRET \(jwt\.secret\): /);
      expect(err.message).not.toContain(secret);
      expect(err.message).not.toContain('\n');
    }
    const readme = configError(() =>
      load({
        NODE_ENV: 'production',
        PUSHCAST_API_KEYS: KEY,
        PUSHCAST_JWT_SECRET: 'replace-with-a-random-secret-of-at-least-32-characters',
      }),
    );
    expect(readme.message).toContain('not allowed in production');
  });

  it('still accepts them outside production (the examples must run)', () => {
    const { config } = load({
      PUSHCAST_API_KEYS: 'dev-cluster-api-key-0123456789',
      PUSHCAST_JWT_SECRET: 'dev-cluster-jwt-secret-0123456789abcdef',
    });
    expect(config.apiKeys[0]!.key).toBe('dev-cluster-api-key-0123456789');
  });
});

describe('JWT options', () => {
  it('defaults: no issuer, no audience, exp required', () => {
    const { jwt } = load(KEYS).config;
    expect(jwt.issuer).toBeUndefined();
    expect(jwt.audience).toBeUndefined();
    expect(jwt.allowNoExp).toBe(false);
  });

  it('reads PUSHCAST_JWT_ISSUER, PUSHCAST_JWT_AUDIENCE (a list) and PUSHCAST_JWT_ALLOW_NO_EXP', () => {
    const { jwt } = load({
      ...KEYS,
      PUSHCAST_JWT_ISSUER: 'https://auth.example.com/',
      PUSHCAST_JWT_AUDIENCE: 'push, push-admin',
      PUSHCAST_JWT_ALLOW_NO_EXP: 'true',
    }).config;
    expect(jwt).toMatchObject({
      issuer: 'https://auth.example.com/',
      audience: ['push', 'push-admin'],
      allowNoExp: true,
    });
    const err = configError(() => load({ ...KEYS, PUSHCAST_JWT_ALLOW_NO_EXP: 'sometimes' }));
    expect(err.message).toMatch(/^invalid setting PUSHCAST_JWT_ALLOW_NO_EXP \(jwt\.allowNoExp\)/);
  });

  it('takes issuer and audience (a string or a list) from the config file', () => {
    const file = writeJson('jwt-claims.json', { jwt: { issuer: 'iss-1', audience: 'aud-1' } });
    const { jwt } = load({ ...KEYS, PUSHCAST_CONFIG: file }).config;
    expect(jwt).toMatchObject({ issuer: 'iss-1', audience: 'aud-1', allowNoExp: false });
    const empty = writeJson('jwt-empty-aud.json', { jwt: { audience: [] } });
    expect(configError(() => load({ ...KEYS, PUSHCAST_CONFIG: empty })).message).toMatch(
      /^invalid setting jwt\.audience/,
    );
  });
});

describe('JWT key settings', () => {
  const ecJwk = (): Record<string, unknown> => ({
    ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' }),
    kid: 'k1',
  });

  it('refuses a JWKS file together with a secret or a public key, naming the settings', () => {
    const jwksFile = writeJson('jwks-ok.json', { keys: [ecJwk()] });
    const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' })
      .publicKey.export({ type: 'spki', format: 'pem' })
      .toString();
    for (const extra of [
      { PUSHCAST_JWT_SECRET: SECRET },
      { PUSHCAST_JWT_PUBLIC_KEY: pem },
    ] as Env[]) {
      const err = configError(() =>
        load({ PUSHCAST_API_KEYS: KEY, PUSHCAST_JWT_JWKS_FILE: jwksFile, ...extra }),
      );
      expect(err.message).toBe(
        'invalid setting PUSHCAST_JWT_JWKS_FILE (jwt.jwksFile): set only one of PUSHCAST_JWT_SECRET, PUSHCAST_JWT_PUBLIC_KEY, PUSHCAST_JWT_JWKS_FILE',
      );
    }
    const both = configError(() => load({ ...KEYS, PUSHCAST_JWT_PUBLIC_KEY: pem }));
    expect(both.message).toMatch(/^invalid setting PUSHCAST_JWT_PUBLIC_KEY \(jwt\.publicKey\): /);
    expect(both.message).toContain('PUSHCAST_JWT_SECRET');
  });

  it('accepts a readable JWKS file', () => {
    const jwksFile = writeJson('jwks-good.json', { keys: [ecJwk()] });
    const { config } = load({ PUSHCAST_API_KEYS: KEY, PUSHCAST_JWT_JWKS_FILE: jwksFile });
    expect(config.jwt.jwksFile).toBe(jwksFile);
    expect(config.jwt.algorithms).toEqual(['RS256', 'ES256']);
  });

  it('refuses a JWKS file that is missing, unreadable, not JSON, not a JWKS, or holds a bad key', () => {
    const cases: Array<[string, RegExp]> = [
      [join(dir, 'no-such-jwks.json'), /: no file at .*no-such-jwks\.json$/],
      [dir, /: cannot read .* \(EISDIR\)$/],
      [writeJson('jwks-broken.json', '{"keys": [hunter2'), /is not valid JSON \(syntax error/],
      [writeJson('jwks-array.json', [ecJwk()]), /is not a JWKS/],
      [writeJson('jwks-empty.json', { keys: [] }), /is not a JWKS/],
      [
        writeJson('jwks-bad-key.json', { keys: [ecJwk(), { kty: 'EC', x: 'hunter2' }] }),
        /: key 1 of .*jwks-bad-key\.json is not a usable public key$/,
      ],
    ];
    if (process.getuid?.() !== 0) {
      const locked = writeJson('jwks-locked.json', { keys: [ecJwk()] });
      chmodSync(locked, 0o000);
      cases.push([locked, /: cannot read .*jwks-locked\.json \(EACCES\)$/]);
    }
    for (const [jwksFile, rule] of cases) {
      const err = configError(() =>
        load({ PUSHCAST_API_KEYS: KEY, PUSHCAST_JWT_JWKS_FILE: jwksFile }),
      );
      expect(err.message).toMatch(/^invalid setting PUSHCAST_JWT_JWKS_FILE \(jwt\.jwksFile\): /);
      expect(err.message).toMatch(rule);
      expect(err.message).not.toContain('hunter2');
      expect(err.message).not.toContain('\n');
    }
  });
});

describe('the process with half-configured or broken secrets', () => {
  async function exitOf(
    env: Record<string, string>,
  ): Promise<{ code: number | null; stderr: string[]; stdout: string[] }> {
    const child = spawnNode({
      script: resolve(import.meta.dirname, '../../src/main.ts'),
      env: { LOG_LEVEL: 'silent', PORT: '0', ...env },
      cwd: dir,
    });
    try {
      const { code } = await child.exited;
      return { code, stderr: child.stderr, stdout: child.stdout };
    } finally {
      await child[Symbol.asyncDispose]();
    }
  }

  it('exits 2 with one line when API keys are set but no JWT key (no development secret)', async () => {
    const { code, stderr, stdout } = await exitOf({ PUSHCAST_API_KEYS: KEY });
    expect(code).toBe(2);
    expect(stderr).toHaveLength(1);
    expect(stderr[0]).toMatch(/^pushcast: invalid setting PUSHCAST_JWT_SECRET \(jwt\): /);
    expect(stdout).toEqual([]);
  });

  it('exits 2 with one line when the JWKS file is missing', async () => {
    const { code, stderr } = await exitOf({
      PUSHCAST_API_KEYS: KEY,
      PUSHCAST_JWT_JWKS_FILE: join(dir, 'gone.json'),
    });
    expect(code).toBe(2);
    expect(stderr).toHaveLength(1);
    expect(stderr[0]).toMatch(
      /^pushcast: invalid setting PUSHCAST_JWT_JWKS_FILE \(jwt\.jwksFile\): no file at .*gone\.json$/,
    );
  });
});
