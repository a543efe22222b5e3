import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backoffDelay, DEFAULT_BACKOFF, MAX_FLOOR_MS } from '../../src/client/backoff.js';

describe('SDK reconnect backoff (full jitter, capped)', () => {
  it('stays in [floor, floor + min(cap, base * 2^attempt)) for any attempt, options and draw', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2000 }),
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 1, max: 120_000 }),
        fc.integer({ min: 0, max: 60_000 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (attempt, baseMs, capMs, floorMs, draw) => {
          const window = Math.min(capMs, baseMs * 2 ** attempt);
          const delay = backoffDelay(attempt, { baseMs, capMs }, floorMs, () => draw);
          expect(delay).toBeGreaterThanOrEqual(floorMs);
          expect(delay).toBeLessThan(floorMs + window);
        },
      ),
    );
  });

  it('is full jitter: the whole window, from 0 up, is reachable', () => {
    const opts = { baseMs: 100, capMs: 1000 };
    expect(backoffDelay(0, opts, 0, () => 0)).toBe(0);
    expect(backoffDelay(0, opts, 0, () => 0.999999)).toBe(99);
    expect(backoffDelay(3, opts, 0, () => 0.999999)).toBe(799);
    // Capped from attempt 4 on (100 * 2^4 > 1000), whatever the attempt.
    expect(backoffDelay(4, opts, 0, () => 0.999999)).toBe(999);
    expect(backoffDelay(10_000, opts, 0, () => 0.999999)).toBe(999);
    // Spread: many draws fill the window rather than clustering at its top.
    const draws = Array.from({ length: 2000 }, () => backoffDelay(5, opts));
    expect(Math.min(...draws)).toBeLessThan(100);
    expect(Math.max(...draws)).toBeGreaterThan(900);
  });

  it('adds the jitter on top of the server floor, so clients told the same floor still spread', () => {
    expect(backoffDelay(0, { baseMs: 500, capMs: 30_000 }, 1000, () => 0)).toBe(1000);
    expect(backoffDelay(0, { baseMs: 500, capMs: 30_000 }, 1000, () => 0.5)).toBe(1250);
    // The floor is honoured past the cap, up to a sanity bound.
    expect(backoffDelay(0, { baseMs: 50, capMs: 200 }, 1000, () => 0)).toBe(1000);
    expect(backoffDelay(0, {}, 1e12, () => 0)).toBe(MAX_FLOOR_MS);
    for (const bad of [-5, NaN, Infinity]) expect(backoffDelay(0, {}, bad, () => 0)).toBe(0);
  });

  it('defaults to base 500 ms and cap 30 s, and ignores unusable options', () => {
    expect(DEFAULT_BACKOFF).toEqual({ baseMs: 500, capMs: 30_000 });
    expect(backoffDelay(0, {}, 0, () => 0.999999)).toBe(499);
    expect(backoffDelay(20, {}, 0, () => 0.999999)).toBe(29_999);
    expect(backoffDelay(0, { baseMs: 0, capMs: -1 }, 0, () => 0.999999)).toBe(499);
    expect(backoffDelay(0, { baseMs: NaN }, 0, () => 0.999999)).toBe(499);
  });
});
