import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';

import { startRedis } from '../support/redis.js';

/** A client that fails fast instead of queueing forever when the server is gone. */
function client(url: string): Redis {
  return new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
}

describe('test/support/redis', () => {
  it('starts, survives SIGKILL + restart on the same port, and stops', async () => {
    const redis = await startRedis();
    try {
      expect(redis.url).toBe(`redis://127.0.0.1:${redis.port}`);
      const firstPid = redis.pid;

      const a = client(redis.url);
      try {
        await a.connect();
        await a.set('pushcast:fixture', 'hello');
        expect(await a.get('pushcast:fixture')).toBe('hello');
      } finally {
        a.disconnect();
      }

      await redis.kill('SIGKILL');
      // The PID is ours alone; once kill() resolves the process must be gone.
      expect(() => process.kill(firstPid, 0)).toThrow();

      await redis.restart();
      expect(redis.pid).not.toBe(firstPid);

      const b = client(redis.url);
      try {
        await b.connect();
        expect(await b.ping()).toBe('PONG');
        // Persistence is off, so the restarted server starts empty.
        expect(await b.get('pushcast:fixture')).toBeNull();
      } finally {
        b.disconnect();
      }
    } finally {
      await redis.stop();
      await redis[Symbol.asyncDispose]();
    }
  }, 30_000);
});
