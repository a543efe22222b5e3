import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { startRedis, type RedisFixture } from '../support/redis.js';
import { freePort } from '../support/ports.js';
import { spawnNode } from '../support/process.js';
import {
  API_KEY,
  JWT_SECRET,
  connectClient,
  postJson,
  startNode,
  token,
} from '../support/nodes.js';
import { expectExactly, until } from '../support/assertions.js';
import { canConnect, inflightPushes } from '../support/probes.js';

/** Lifecycle of a real node process: SIGTERM drain, drain timeout, second signal. */
describe('node lifecycle (process, Redis)', () => {
  let redis: RedisFixture;
  let admin: Redis;
  beforeAll(async () => {
    redis = await startRedis();
    admin = new Redis(redis.url);
  });
  afterAll(async () => {
    admin?.disconnect();
    await redis?.stop();
  });

  /**
   * Blocks every client of the Redis for `ms` (CLIENT PAUSE ALL, the admin connection too); the
   * pause is in effect once this resolves.
   */
  const pauseRedis = async (ms: number): Promise<void> => {
    expect(await admin.call('CLIENT', 'PAUSE', String(ms), 'ALL')).toBe('OK');
  };

  const env = (port: number, extra: Record<string, string> = {}) => ({
    PORT: String(port),
    HOST: '127.0.0.1',
    REDIS_URL: redis.url,
    NODE_ENV: 'test',
    LOG_LEVEL: 'info',
    PUSHCAST_API_KEYS: API_KEY,
    PUSHCAST_JWT_SECRET: JWT_SECRET,
    ...extra,
  });

  it('SIGTERM: readiness drops at once, traffic is served through the delay, in-flight pushes finish, exit 0', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    await using node = spawnNode({
      script: 'src/main.ts',
      env: env(port, { PUSHCAST_SHUTDOWN_DELAY_MS: '600' }),
    });
    await node.waitForLine(/pushcast ready/);
    const other = await startNode({ redisUrl: redis.url });
    const client = await connectClient(other.url, {
      token: await token({ sub: 'u', channels: ['life'] }),
    });
    try {
      await client.join('life');
      // Redis paused for 400 ms (in effect once the OK is back): this push waits on it.
      await pauseRedis(400);
      const inflight = postJson(`${url}/api/push`, {
        channel: 'life',
        event: 'e',
        data: 'inflight',
      });
      // SIGTERM once the push is really in flight: the node's own gauge says so.
      await until(
        async () => (await inflightPushes(`http://127.0.0.1:${port}`)) === 1,
        2000,
        'the push in flight',
      );
      node.kill('SIGTERM');
      // The node says it drains once readiness has dropped: read it then, once.
      await node.waitForLine(/"msg":"draining"/);
      expect((await fetch(`${url}/readyz`)).status).toBe(503);
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      // Still inside the shutdown delay: pushes are taken.
      const during = await postJson(`${url}/api/push`, {
        channel: 'life',
        event: 'e',
        data: 'during',
      });
      expect(during.status).toBe(200);
      const first = await inflight;
      expect(first.status).toBe(200);
      // The delay is over once the node stops listening.
      await until(async () => !(await canConnect(port)), 5000, 'the node to stop listening');
      // Past the delay: refused (503 on a kept-alive connection) or not listening at all.
      const after = await postJson(`${url}/api/push`, {
        channel: 'life',
        event: 'e',
        data: 'after',
      }).catch(() => undefined);
      if (after) {
        expect(after.status).toBe(503);
        expect(after.body.code).toBe('unavailable');
        expect(after.headers.get('retry-after')).toBeTruthy();
      }
      expect(await node.exited).toEqual({ code: 0, signal: null });
      await expectExactly(other, client, 'life', 2);
      expect(client.messages.slice(0, 2).map((m) => m.data)).toEqual(['inflight', 'during']);
    } finally {
      client.close();
      await other.stop();
    }
  });

  it('a drain that times out with pushes in flight exits non-zero and says how many', async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'pushcast-cfg-'));
    const file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ redis: { commandTimeoutMs: 5000 } }));
    await using node = spawnNode({
      script: 'src/main.ts',
      env: env(port, { PUSHCAST_CONFIG: file, PUSHCAST_DRAIN_TIMEOUT_MS: '200' }),
    });
    await node.waitForLine(/pushcast ready/);
    await pauseRedis(1500);
    const inflight = postJson(`http://127.0.0.1:${port}/api/push`, {
      channel: 'slow',
      event: 'e',
      data: 1,
    }).catch(() => undefined);
    // SIGTERM once the push is really in flight (past the rate limit, waiting on Redis): the
    // node's own gauge says so without asking Redis.
    await until(
      async () => (await inflightPushes(`http://127.0.0.1:${port}`)) >= 1,
      1200,
      'the push in flight',
    );
    expect(await inflightPushes(`http://127.0.0.1:${port}`)).toBe(1);
    node.kill('SIGTERM');
    const exit = await node.exited;
    expect(exit.code).toBe(1);
    expect(node.stdout.some((l) => /drain timed out/.test(l) && /"inflight":1/.test(l))).toBe(true);
    await inflight;
    // Answered once the pause is over: the next test starts on a Redis that answers.
    expect(await admin.ping()).toBe('PONG');
  });

  it('a second signal exits at once', async () => {
    const port = await freePort();
    await using node = spawnNode({
      script: 'src/main.ts',
      env: env(port, { PUSHCAST_SHUTDOWN_DELAY_MS: '20000' }),
    });
    await node.waitForLine(/pushcast ready/);
    node.kill('SIGTERM');
    await node.waitForLine(/draining/);
    const t0 = Date.now();
    node.kill('SIGINT');
    const exit = await node.exited;
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(exit.code).not.toBe(0);
  });
});
