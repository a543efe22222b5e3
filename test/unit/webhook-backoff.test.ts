import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { retryDelayMs } from '../../src/webhooks/webhooks.js';

// The webhook retry schedule (README: "1 s doubling to 30 s, with jitter"), as a function: the
// cap and the jitter cannot be shown by waiting for real retries (the cap takes six failures and
// about a minute; one sample per attempt cannot tell jitter from noise).

describe('webhook retry delay', () => {
  it('waits between half and all of the step, 1 s doubling, capped at 30 s', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10_000 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (failures, random) => {
          const step = Math.min(30_000, 1000 * 2 ** (failures - 1));
          const delay = retryDelayMs(failures, random);
          expect(delay).toBeGreaterThanOrEqual(step / 2);
          // At most the step (a random just under 1 can round up to it).
          expect(delay).toBeLessThanOrEqual(step);
        },
      ),
      { numRuns: 2000 },
    );
    expect([1, 2, 3, 4, 5, 6, 7, 100].map((n) => retryDelayMs(n, 0))).toEqual([
      500, 1000, 2000, 4000, 8000, 15_000, 15_000, 15_000,
    ]);
    expect(retryDelayMs(1_000_000, 0.999_999)).toBeLessThanOrEqual(30_000);
  });

  it('spreads retries evenly over the upper half of the step (equal jitter)', () => {
    // 20,000 draws after six failures (the capped step, 30 s): every tenth of the range
    // [15 s, 30 s) gets its share (2,000 expected, standard deviation about 42: 1,700-2,300 is
    // seven of them, so a fair draw fails this about once in 10^11 runs).
    const buckets = new Array<number>(10).fill(0);
    for (let i = 0; i < 20_000; i++) {
      const delay = retryDelayMs(6);
      expect(delay).toBeGreaterThanOrEqual(15_000);
      expect(delay).toBeLessThanOrEqual(30_000);
      buckets[Math.min(9, Math.floor((delay - 15_000) / 1500))]! += 1;
    }
    for (const count of buckets) {
      expect(count).toBeGreaterThan(1700);
      expect(count).toBeLessThan(2300);
    }
  });
});
