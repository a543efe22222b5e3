import { get } from 'node:http';
import { describe, expect, it } from 'vitest';
import { DEV_API_KEY, DEV_JWT_SECRET } from '../../src/config/development.js';
import { freePort } from '../support/ports.js';
import { spawnNode, type NodeProcess } from '../support/process.js';
import { API_KEY, JWT_SECRET, connectClient, postJson, token } from '../support/nodes.js';
import { until } from '../support/assertions.js';

/**
 * A closed stdout (the log reader went away) must neither block shutdown nor take the node down:
 * it keeps serving, and SIGTERM still drains and exits 0.
 */

/** Resolves with the exit, or rejects if the process is still running `ms` after the call. */
function exitWithin(node: NodeProcess, ms: number, what: string) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still running after ${ms} ms`)), ms);
  });
  return Promise.race([node.exited, deadline]).finally(() => clearTimeout(timer));
}

/** Resolves once GET /healthz answers 200; rejects if the process exits or `timeoutMs` passes. */
async function healthy(node: NodeProcess, url: string, timeoutMs: number): Promise<void> {
  let exited = false;
  void node.exited.then(() => (exited = true));
  await until(
    async () => {
      if (exited) throw new Error(`the node exited\n${node.stderr.join('\n')}`);
      const status = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) }).then(
        (res) => res.status,
        () => undefined,
      );
      return status === 200;
    },
    timeoutMs,
    `a 200 from ${url}/healthz`,
  );
}

/** GET on a connection of its own, closed after the answer (no keep-alive left open). */
function status(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    }).on('error', reject);
  });
}

const STDERR_NOTE = 'pushcast: stdout is closed (EPIPE): logging stopped; the node keeps serving';

describe('closed stdout', () => {
  it('stdout closed once the node is up: it keeps serving, and SIGTERM exits 0', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    await using node = spawnNode({
      script: 'src/main.ts',
      env: {
        PORT: String(port),
        HOST: '127.0.0.1',
        NODE_ENV: 'test',
        LOG_LEVEL: 'info',
        PUSHCAST_API_KEYS: API_KEY,
        PUSHCAST_JWT_SECRET: JWT_SECRET,
      },
    });
    await node.waitForLine(/pushcast ready/);
    node.closeStdout();
    expect(await status(`${url}/healthz`)).toBe(200);

    // The signal is the first thing logged since stdout closed: the write fails while the node
    // stops, and the exit must not wait on it.
    node.kill('SIGTERM');
    expect(await exitWithin(node, 15_000, 'after SIGTERM')).toEqual({ code: 0, signal: null });
    // Said once on stderr, where whoever runs the node still looks.
    expect(node.stderr).toEqual([STDERR_NOTE]);
  });

  it('stdout closed before the start banner: the node starts, serves, and SIGTERM exits 0', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    // No secrets: the zero-setting first run, which prints the development banner on stdout.
    await using node = spawnNode({ script: 'src/main.ts', env: { PORT: String(port) } });
    node.closeStdout();

    // Up means past the banner: it is written before the first request is read.
    await healthy(node, url, 20_000);
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    // Serving, and logging into the void: a socket (logged at connect) gets a push (logged).
    const client = await connectClient(url, {
      token: await token({ channels: ['out'] }, { secret: DEV_JWT_SECRET }),
    });
    try {
      expect(await client.join('out')).toMatchObject({ ok: true });
      const res = await postJson(
        `${url}/api/push`,
        { channel: 'out', event: 'e', data: 1 },
        { authorization: `Bearer ${DEV_API_KEY}` },
      );
      expect(res.status).toBe(200);
      await client.waitFor(1);
    } finally {
      client.close();
    }

    node.kill('SIGTERM');
    expect(await exitWithin(node, 15_000, 'after SIGTERM')).toEqual({ code: 0, signal: null });
    expect(node.stdout).toEqual([]);
    expect(node.stderr).toEqual([STDERR_NOTE]);
  });
});
