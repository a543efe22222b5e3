import { describe, expect, it } from 'vitest';
import { spawnNode } from '../support/process.js';
import { freePort } from '../support/ports.js';
import { API_KEY, JWT_SECRET, connectClient } from '../support/nodes.js';

const LOUD = /^!!! DEVELOPMENT SECRETS IN USE: anyone can push and join any channel\.$/;

/** A newcomer's first run: no settings, follow what the server prints. */
describe('development first run', () => {
  it('starts with no settings, prints a key and a token recipe that work end to end', async () => {
    const port = await freePort();
    // Only the port is set (to stay off ports other tests use); no key, no secret, no Redis.
    await using server = spawnNode({ script: 'src/main.ts', env: { PORT: String(port) } });
    // Loud before anything else: the development secrets are public.
    await server.waitForLine(LOUD);
    await server.waitForLine(/^!!! Set PUSHCAST_API_KEYS and PUSHCAST_JWT_SECRET/);
    const warning = server.stdout.find((line) => line.includes('"developmentSecrets":true'));
    expect(JSON.parse(warning!)).toMatchObject({ level: 40 });
    const [, url] = await server.waitForLine(/pushcast is running at (http:\/\/\S+)/);
    const [, apiKey] = await server.waitForLine(/Development API key: (\S+)/);
    const [curl] = await server.waitForLine(/curl -X POST .*/);
    expect(curl).toContain(`Bearer ${apiKey}`);
    await server.waitForLine(/npm run token -- --sub 42 --channels 'user:42'/);

    // The printed recipe runs `pushcast token`; run the same command line through the CLI source.
    await using cli = spawnNode({
      script: 'src/cli/index.ts',
      env: {},
      argv: ['token', '--sub', '42', '--channels', 'user:42'],
    });
    const exit = await cli.exited;
    expect(exit.code).toBe(0);
    const token = cli.stdout.at(-1)!;
    expect(token.split('.')).toHaveLength(3);

    const client = await connectClient(url!.replace('localhost', '127.0.0.1'), { token });
    try {
      expect(await client.join('user:42')).toMatchObject({ ok: true, channel: 'user:42' });
      // The body of the printed curl line, sent as curl would.
      const body = /-d '([^']+)'/.exec(curl)![1]!;
      const res = await fetch(`http://127.0.0.1:${port}/api/push`, {
        method: 'POST',
        headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
        body,
      });
      expect(res.status).toBe(200);
      const [msg] = await client.waitFor(1);
      expect(msg).toMatchObject({ channel: 'user:42', event: 'hello', data: { text: 'hi' } });
    } finally {
      client.close();
    }
    server.kill('SIGTERM');
    expect((await server.exited).code).toBe(0);
  });

  it('prints no development warning (and no development key) when real secrets are set', async () => {
    const port = await freePort();
    await using server = spawnNode({
      script: 'src/main.ts',
      env: {
        PORT: String(port),
        HOST: '127.0.0.1',
        PUSHCAST_API_KEYS: API_KEY,
        PUSHCAST_JWT_SECRET: JWT_SECRET,
      },
    });
    await server.waitForLine(/pushcast ready/);
    server.kill('SIGTERM');
    expect((await server.exited).code).toBe(0);
    const output = [...server.stdout, ...server.stderr].join('\n');
    expect(output).not.toMatch(/DEVELOPMENT SECRETS/);
    expect(output).not.toContain('Development API key');
    expect(output).not.toContain(API_KEY);
  });
});
