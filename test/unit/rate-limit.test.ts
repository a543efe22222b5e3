import { describe, expect, it } from 'vitest';
import { RateLimiter } from '../../src/limits/token-bucket.js';

function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

describe('RateLimiter', () => {
  it('allows the burst, then refuses with the seconds to wait', () => {
    const c = clock();
    const limiter = new RateLimiter(1, 2, c.now);
    expect(limiter.take('k')).toBe(0);
    expect(limiter.take('k')).toBe(0);
    expect(limiter.take('k')).toBe(1);
    // A refusal takes nothing: after a second exactly one more fits.
    c.advance(1000);
    expect(limiter.take('k')).toBe(0);
    expect(limiter.take('k')).toBe(1);
  });

  it('refills at the rate, never above the burst', () => {
    const c = clock();
    const limiter = new RateLimiter(10, 5, c.now);
    for (let i = 0; i < 5; i++) expect(limiter.take('k')).toBe(0);
    expect(limiter.take('k')).toBe(1);
    c.advance(60_000);
    for (let i = 0; i < 5; i++) expect(limiter.take('k')).toBe(0);
    expect(limiter.take('k')).toBe(1);
    c.advance(100); // one token at 10/s
    expect(limiter.take('k')).toBe(0);
    expect(limiter.take('k')).toBe(1);
  });

  it('gives back refunded tokens, never above the burst', () => {
    const c = clock();
    const limiter = new RateLimiter(1, 3, c.now);
    expect(limiter.take('k', 3)).toBe(0);
    limiter.refund('k', 2);
    expect(limiter.take('k', 2)).toBe(0);
    expect(limiter.take('k')).toBe(1);
    limiter.refund('k', 10);
    expect(limiter.take('k', 3)).toBe(0);
    expect(limiter.take('k')).toBe(1);
    limiter.refund('unknown', 1); // no bucket: nothing to give back, no throw
    expect(limiter.take('unknown', 3)).toBe(0);
  });

  it('keeps one bucket per key', () => {
    const c = clock();
    const limiter = new RateLimiter(1, 1, c.now);
    expect(limiter.take('a')).toBe(0);
    expect(limiter.take('a')).toBe(1);
    expect(limiter.take('b')).toBe(0);
    limiter.forget('a');
    expect(limiter.take('a')).toBe(0);
  });

  it('charges a cost and answers the wait for the whole cost', () => {
    const c = clock();
    const limiter = new RateLimiter(2, 10, c.now);
    expect(limiter.take('k', 10)).toBe(0);
    // 6 tokens at 2/s: 3 s.
    expect(limiter.take('k', 6)).toBe(3);
    c.advance(3000);
    expect(limiter.take('k', 6)).toBe(0);
  });

  it('lets a cost over the burst through once the bucket is full, as debt, so waits stay honest', () => {
    const c = clock();
    const limiter = new RateLimiter(1, 2, c.now);
    expect(limiter.take('k')).toBe(0);
    const wait = limiter.take('k', 5);
    expect(wait).toBe(1);
    // Waiting the answered time must be enough.
    c.advance(wait * 1000);
    expect(limiter.take('k', 5)).toBe(0);
    // The debt (2 - 5 = -3) is paid back before the next push: 4 s for one token.
    expect(limiter.take('k')).toBe(4);
    c.advance(4000);
    expect(limiter.take('k')).toBe(0);
  });
});
