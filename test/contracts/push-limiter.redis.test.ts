import { describe, expect, it, vi } from 'vitest';
import { RedisPushLimiter } from '../../src/backend/redis/redis-push-limiter.js';
import { useRedis } from '../support/redis.js';
import { sleep } from '../support/contracts.js';
import { pushLimiterContract } from './push-limiter.contract.js';

const redis = useRedis();
const prefix = (): string => `ct${Math.random().toString(36).slice(2, 10)}`;

const limiterOf = (
  limit: { perSecond: number; burst: number },
  options: { keyPrefix?: string; lease?: number } = {},
): RedisPushLimiter =>
  new RedisPushLimiter(redis.clients.pub, {
    keyPrefix: options.keyPrefix ?? prefix(),
    ...limit,
    // Production falls back to the node's memory past 100 ms; on a loaded test machine that
    // would quietly test the fallback instead of Redis.
    timeoutMs: 2000,
    ...(options.lease === undefined ? {} : { lease: options.lease }),
  });

// The contract's burst (5) takes no leases: every charge asks Redis.
pushLimiterContract('redis (rate-limiter-flexible)', (limit) =>
  Promise.resolve({ limiter: limiterOf(limit), close: () => Promise.resolve() }),
);

// The same promises with a lease of 2 taken at every charge that asks Redis.
pushLimiterContract('redis, leasing 2 pushes ahead', (limit) =>
  Promise.resolve({ limiter: limiterOf(limit, { lease: 2 }), close: () => Promise.resolve() }),
);

describe('RedisPushLimiter leases', () => {
  /** What Redis counts as charged in the key's window. */
  const counted = async (keyPrefix: string, keyId: string): Promise<number> =>
    Number(await redis.clients.pub.get(`${keyPrefix}:ratelimit:${keyId}`));

  it('answers charges from a lease without asking Redis (a 64th of the burst, at most 100)', async () => {
    const keyPrefix = prefix();
    const limiter = limiterOf({ perSecond: 640, burst: 6400 }, { keyPrefix });
    expect(await limiter.charge('k', 1)).toBe(0);
    // The charge and a lease of 100.
    expect(await counted(keyPrefix, 'k')).toBe(101);
    for (let i = 0; i < 100; i++) expect(await limiter.charge('k', 1)).toBe(0);
    expect(await counted(keyPrefix, 'k')).toBe(101);
    expect(await limiter.charge('k', 1)).toBe(0);
    expect(await counted(keyPrefix, 'k')).toBe(202);

    const small = prefix();
    const exact = limiterOf({ perSecond: 6.3, burst: 63 }, { keyPrefix: small });
    expect(await exact.charge('k', 1)).toBe(0);
    expect(await counted(small, 'k')).toBe(1);
  });

  it('lets two nodes charging one key through the burst exactly, never more', async () => {
    const keyPrefix = prefix();
    // A lease of 10 each; a 10 s window that does not end within the case.
    const nodes = [0, 1].map(() => limiterOf({ perSecond: 64, burst: 640 }, { keyPrefix }));
    const accepted = [0, 0];
    const refused = [false, false];
    while (!refused[0] || !refused[1]) {
      for (const n of [0, 1]) {
        if (refused[n]) continue;
        if ((await nodes[n]!.charge('k', 1)) === 0) accepted[n]! += 1;
        else refused[n] = true;
      }
    }
    expect(accepted[0]! + accepted[1]!).toBe(640);
    expect(await counted(keyPrefix, 'k')).toBe(640);
  });

  it('takes one lease per key at a time, however many charges find none at once', async () => {
    const keyPrefix = prefix();
    // A lease of 10 each.
    const [a, b] = [0, 1].map(() => limiterOf({ perSecond: 64, burst: 640 }, { keyPrefix }));
    // Twenty pushes of one key arrive at node A together, before any lease is there.
    const answers = await Promise.all(Array.from({ length: 20 }, () => a!.charge('k', 1)));
    expect(answers.every((wait) => wait === 0)).toBe(true);
    // Redis counts the twenty and one lease, not a lease each (220).
    expect(await counted(keyPrefix, 'k')).toBe(30);
    // So node B may still push the rest of the burst, less that one lease.
    let accepted = 0;
    while ((await b!.charge('k', 1)) === 0) accepted += 1;
    expect(accepted).toBe(610);
  });

  it('spends nothing of a lease after its window ends', async () => {
    const keyPrefix = prefix();
    // A 1 s window of 64 pushes; each charge that asks Redis takes 5 ahead.
    const limiter = limiterOf({ perSecond: 64, burst: 64 }, { keyPrefix, lease: 5 });
    expect(await limiter.charge('k', 1)).toBe(0);
    await sleep(1200);
    let accepted = 0;
    while ((await limiter.charge('k', 1)) === 0) accepted += 1;
    // All of the new window, and not one of the 5 left from the old one.
    expect(accepted).toBe(64);
  });

  it('refuses a key past its limit in one charge and one give-back, lease or not', async () => {
    const limiter = limiterOf({ perSecond: 64, burst: 640 });
    for (let spent = 0; spent < 640;) if ((await limiter.charge('k', 10)) === 0) spent += 10;
    const sent = vi.spyOn(redis.clients.pub, 'sendCommand');
    try {
      expect(await limiter.charge('k', 1)).toBeGreaterThanOrEqual(1);
      expect(sent.mock.calls).toHaveLength(2);
    } finally {
      sent.mockRestore();
    }
  });

  it('gives a refund back to the lease, never more than this node spent in the window', async () => {
    const keyPrefix = prefix();
    const limiter = limiterOf({ perSecond: 64, burst: 640 }, { keyPrefix });
    expect(await limiter.charge('k', 3)).toBe(0);
    await limiter.refund('k', 5);
    // 3 back (only 3 spent), nothing sent to Redis: 13 counted there, 13 held here.
    expect(await counted(keyPrefix, 'k')).toBe(13);
    for (let i = 0; i < 13; i++) expect(await limiter.charge('k', 1)).toBe(0);
    expect(await counted(keyPrefix, 'k')).toBe(13);
  });
});
