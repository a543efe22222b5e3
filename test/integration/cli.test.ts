import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import { spawnNode } from '../support/process.js';
import {
  API_KEY,
  JWT_SECRET,
  connectClient,
  startNode,
  token,
  type TestNode,
} from '../support/nodes.js';

/** Runs the CLI (TypeScript source, as `pushcast ...`) and collects its output and exit code. */
async function pushcast(argv: string[], env: Record<string, string> = {}) {
  await using cli = spawnNode({ script: 'src/cli/index.ts', env, argv });
  const { code } = await cli.exited;
  return { code, stdout: cli.stdout.join('\n'), stderr: cli.stderr.join('\n') };
}

describe('pushcast CLI', () => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startNode();
  });
  afterAll(async () => node?.stop());
  const env = () => ({ PUSHCAST_URL: node.url, PUSHCAST_API_KEY: API_KEY });

  it('has --help for every command', async () => {
    const main = await pushcast(['--help']);
    expect(main.code).toBe(0);
    const commands = ['serve', 'push', 'token', 'stats', 'disconnect', 'unsubscribe'];
    for (const c of commands) expect(main.stdout).toContain(c);
    for (const c of commands) {
      const r = await pushcast([c, '--help']);
      expect(r.code, c).toBe(0);
      expect(r.stdout, c).toContain(`Usage: pushcast ${c}`);
    }
  });

  it('refuses unknown commands and bad usage with exit code 2', async () => {
    const unknown = await pushcast(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown command "frobnicate"');
    expect((await pushcast(['push', 'only-a-channel'], env())).code).toBe(2);
    const badJson = await pushcast(['push', 'c', 'e', '{nope'], env());
    expect(badJson.code).toBe(2);
    expect(badJson.stderr).toContain('not valid JSON');
    expect((await pushcast(['token'])).code).toBe(2);
    expect((await pushcast(['token', '--sub', 'x', '--ttl', '-5'])).code).toBe(2);
  });

  it('mints a development token with the configured secret', async () => {
    const r = await pushcast(
      ['token', '--sub', 'u7', '--channels', 'user:7,org:1:*', '--ttl', '60'],
      // The server's settings: a JWT secret alone is refused (no development key beside it).
      { PUSHCAST_API_KEYS: API_KEY, PUSHCAST_JWT_SECRET: JWT_SECRET },
    );
    expect(r.code).toBe(0);
    const claims = decodeJwt(r.stdout.trim());
    expect(claims).toMatchObject({ sub: 'u7', channels: ['user:7', 'org:1:*'] });
    expect(claims.exp! - claims.iat!).toBe(60);
    // The node accepts it.
    const c = await connectClient(node.url, { token: r.stdout.trim() });
    expect(await c.join('org:1:x')).toMatchObject({ ok: true });
    c.close();
  });

  it('puts the configured issuer and audience in the token', async () => {
    const r = await pushcast(['token', '--sub', 'u8'], {
      PUSHCAST_API_KEYS: API_KEY,
      PUSHCAST_JWT_SECRET: JWT_SECRET,
      PUSHCAST_JWT_ISSUER: 'https://auth.example.com',
      PUSHCAST_JWT_AUDIENCE: 'push',
    });
    expect(r.code).toBe(0);
    expect(decodeJwt(r.stdout.trim())).toMatchObject({
      sub: 'u8',
      iss: 'https://auth.example.com',
      aud: ['push'],
    });
  });

  it('pushes through the API and prints the id', async () => {
    const c = await connectClient(node.url, {
      token: await token({ sub: 'u', channels: ['cli:*'] }),
    });
    try {
      await c.join('cli:a');
      const r = await pushcast(['push', 'cli:a', 'hello', '{"x":1}'], env());
      expect(r.code).toBe(0);
      const [m] = await c.waitFor(1);
      expect(m).toMatchObject({
        channel: 'cli:a',
        event: 'hello',
        data: { x: 1 },
        id: r.stdout.trim(),
      });
    } finally {
      c.close();
    }
  });

  it('exits 1 with the server’s error when refused or unreachable', async () => {
    const refused = await pushcast(['push', 'cli:a', 'e', '1'], {
      ...env(),
      PUSHCAST_API_KEY: 'wrong-key-0123456789abc',
    });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('401 unauthorized');
    const invalid = await pushcast(['push', 'bad channel', 'e', '1'], env());
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toContain('422 invalid_push');
    const down = await pushcast(['push', 'cli:a', 'e', '1'], {
      PUSHCAST_URL: 'http://127.0.0.1:1',
      PUSHCAST_API_KEY: API_KEY,
    });
    expect(down.code).toBe(1);
    expect(down.stderr).toContain('cannot reach');
  });

  it('shows the cluster with stats', async () => {
    const r = await pushcast(['stats'], env());
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(node.server.node);
    expect(r.stdout).toMatch(/1 node\(s\)/);
    const json = await pushcast(['stats', '--json'], env());
    expect(JSON.parse(json.stdout).nodes[0].id).toBe(node.server.node);
  });
});
