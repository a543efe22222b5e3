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
      // Redis busy for 400 ms: this push is in flight when the signal arrives.
      void admin.call('DEBUG', 'SLEEP', '0.4');
      await new Promise((r) => setTimeout(r, 30));
      const inflight = postJson(`${url}/api/push`, {
        channel: 'life',
        event: 'e',
        data: 'inflight',
      });
      await new Promise((r) => setTimeout(r, 50));
      node.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 100));
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
      await new Promise((r) => setTimeout(r, 600));
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
      const got = await client.waitFor(2);
      expect(got.map((m) => m.data)).toEqual(['inflight', 'during']);
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
    void admin.call('DEBUG', 'SLEEP', '1.5');
    await new Promise((r) => setTimeout(r, 30));
    const inflight = postJson(`http://127.0.0.1:${port}/api/push`, {
      channel: 'slow',
      event: 'e',
      data: 1,
    }).catch(() => undefined);
    // SIGTERM once the push is really in flight (past the rate limit, waiting on Redis): the
    // node's own gauge says so without asking Redis.
    const inflightNow = async (): Promise<number> => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return Number(/^pushcast_inflight_pushes (\d+)/m.exec(text)?.[1] ?? 0);
    };
    const deadline = Date.now() + 1200;
    while ((await inflightNow()) < 1 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
    expect(await inflightNow()).toBe(1);
    node.kill('SIGTERM');
    const exit = await node.exited;
    expect(exit.code).toBe(1);
    expect(node.stdout.some((l) => /drain timed out/.test(l) && /"inflight":1/.test(l))).toBe(true);
    await inflight;
    await new Promise((r) => setTimeout(r, 1600)); // let Redis wake before the next test
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
