import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '../support/assertions.js';
import { watchEnd } from '../support/control.js';
import { API_KEY, connectClient, startNode, token, type TestNode } from '../support/nodes.js';
import { spawnNode } from '../support/process.js';

/**
 * `pushcast disconnect` and `pushcast unsubscribe`: the control API from the command line (their
 * help is checked with every command's in cli.test.ts).
 */

const READ_KEY = 'cli-read-only-key-0123456789abcdef';

/** Runs the CLI (TypeScript source, as `pushcast ...`) and collects its output and exit code. */
async function pushcast(argv: string[], env: Record<string, string> = {}) {
  await using cli = spawnNode({ script: 'src/cli/index.ts', env, argv });
  const { code } = await cli.exited;
  return { code, stdout: cli.stdout.join('\n'), stderr: cli.stderr.join('\n') };
}

describe('pushcast disconnect / unsubscribe', () => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startNode({
      apiKeys: [
        { key: API_KEY, id: 'test' },
        { key: READ_KEY, id: 'read', scopes: ['read'] },
      ],
    });
  });
  afterAll(async () => node?.stop());
  const env = (key = API_KEY) => ({ PUSHCAST_URL: node.url, PUSHCAST_API_KEY: key });
  const connect = async (sub: string) =>
    connectClient(node.url, { token: await token({ sub, channels: ['cli:*'] }) });

  it('disconnect closes the user’s connections and prints how many', async () => {
    const a = await connect('cli-u1');
    const b = await connect('cli-u1');
    const ends = [watchEnd(a.socket), watchEnd(b.socket)];
    try {
      const r = await pushcast(['disconnect', 'cli-u1'], env());
      expect(r).toMatchObject({ code: 0, stdout: '2 connection(s) closed' });
      await until(() => ends.every((e) => e.reason === 'io server disconnect'), 5000, 'closed');
      expect(ends[0]!.errors).toMatchObject([{ code: 'disconnected' }]);
    } finally {
      a.close();
      b.close();
    }
  });

  it('unsubscribe takes the user out of the channel and prints how many', async () => {
    const c = await connect('cli-u2');
    const end = watchEnd(c.socket);
    try {
      expect(await c.join('cli:room')).toMatchObject({ ok: true });
      const r = await pushcast(['unsubscribe', 'cli:room', 'cli-u2'], env());
      expect(r).toMatchObject({ code: 0, stdout: '1 connection(s) unsubscribed' });
      await until(() => end.lefts.length > 0, 5000, 'left');
      expect(end.lefts).toEqual([{ channel: 'cli:room', reason: 'unsubscribed' }]);
      // Run again: nothing left to do, and that is not an error.
      const again = await pushcast(['unsubscribe', 'cli:room', 'cli-u2'], env());
      expect(again).toMatchObject({ code: 0, stdout: '0 connection(s) unsubscribed' });
    } finally {
      c.close();
    }
  });

  it('exits 2 on bad usage and 1 with the server’s answer when refused', async () => {
    for (const argv of [['disconnect'], ['disconnect', 'a', 'b'], ['unsubscribe', 'cli:room']]) {
      const r = await pushcast(argv, env());
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.stderr, argv.join(' ')).toContain(`usage: pushcast ${argv[0]}`);
    }
    const refused = await pushcast(['disconnect', 'someone'], env(READ_KEY));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('403 forbidden');
    const invalid = await pushcast(['unsubscribe', 'bad channel', 'someone'], env());
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toContain('422 invalid_request');
  });
});
