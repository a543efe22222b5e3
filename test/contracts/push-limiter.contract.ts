import { afterAll, beforeAll, describe, expect } from 'vitest';
import type { PushLimiter } from '../../src/limits/push-limiter.js';
import {
  contractCases,
  sleep,
  type KnownFailures,
  type ManualClock,
} from '../support/contracts.js';

/**
 * What every `PushLimiter` promises (src/limits/push-limiter.ts): charges within the burst
 * answer 0, past it a wait of whole seconds (at least 1, at most a full refill) that is honoured,
 * refunds give back (never past the burst), a refusal takes nothing, keys are independent. Each implementation's test file calls `pushLimiterContract`.
 */
export interface PushLimiterHarness {
  limiter: PushLimiter;
  /** The clock the limiter reads, if it takes one; absent: real time. */
  clock?: ManualClock;
  close(): Promise<void>;
}

/**
 * The limit most cases run with: a burst of 5 that takes 10 s to refill, so nothing refills
 * within a case even on a slow machine (a fixed-window limiter's window is 10 s too).
 */
export const CONTRACT_LIMIT = { perSecond: 0.5, burst: 5 };
/** For the case that waits the answered time for real: refills in 1 s. */
export const FAST_LIMIT = { perSecond: 5, burst: 5 };
const BURST = CONTRACT_LIMIT.burst;

export type MakePushLimiter = (limit: {
  perSecond: number;
  burst: number;
}) => Promise<PushLimiterHarness>;

export function pushLimiterContract(
  name: string,
  make: MakePushLimiter,
  known?: KnownFailures,
): void {
  const suite = `PushLimiter contract: ${name}`;
  describe(suite, () => {
    const it = contractCases(suite, known);
    let h: PushLimiterHarness;
    let limiter: PushLimiter;
    beforeAll(async () => {
      h = await make(CONTRACT_LIMIT);
      limiter = h.limiter;
    });
    afterAll(async () => {
      await h?.close();
    });

    const run = Math.random().toString(36).slice(2, 8);
    let keys = 0;
    const keyId = (): string => `key-${run}-${++keys}`;
    /** Charges one push `times` times; the answers. */
    const chargeOnes = async (id: string, times: number): Promise<number[]> => {
      const answers: number[] = [];
      for (let i = 0; i < times; i++) answers.push(await limiter.charge(id, 1));
      return answers;
    };
    const expectWait = (wait: number): void => {
      expect(Number.isInteger(wait)).toBe(true);
      expect(wait).toBeGreaterThanOrEqual(1);
      // One push short of a full bucket never waits longer than a full refill.
      expect(wait).toBeLessThanOrEqual(Math.ceil(BURST / CONTRACT_LIMIT.perSecond));
    };

    it('answers 0 for each charge within the burst', async () => {
      expect(await chargeOnes(keyId(), BURST)).toEqual(Array(BURST).fill(0));
    });

    it('answers a wait of at least 1 s (whole seconds) past the burst', async () => {
      const id = keyId();
      await chargeOnes(id, BURST);
      expectWait(await limiter.charge(id, 1));
      expectWait(await limiter.charge(id, 1));
    });

    it('answers 0 for the whole burst at once, then a wait', async () => {
      const id = keyId();
      expect(await limiter.charge(id, BURST)).toBe(0);
      expectWait(await limiter.charge(id, 1));
    });

    it('answers a wait for a cost that does not fit what is left', async () => {
      const id = keyId();
      await chargeOnes(id, BURST - 2);
      expectWait(await limiter.charge(id, 3));
    });

    it('lets a cost over the burst through on a full bucket, then makes the next charge wait', async () => {
      const id = keyId();
      expect(await limiter.charge(id, BURST * 3)).toBe(0);
      const wait = await limiter.charge(id, 1);
      expect(Number.isInteger(wait)).toBe(true);
      expect(wait).toBeGreaterThanOrEqual(1);
    });

    it('gives back refunded pushes', async () => {
      const id = keyId();
      await chargeOnes(id, BURST);
      await limiter.refund(id, 2);
      expect(await limiter.charge(id, 2)).toBe(0);
      expectWait(await limiter.charge(id, 1));
    });

    it('never lifts the allowance above the burst with a refund', async () => {
      const id = keyId();
      await limiter.charge(id, 1);
      await limiter.refund(id, 1);
      await limiter.refund(id, 3);
      expect(await chargeOnes(id, BURST)).toEqual(Array(BURST).fill(0));
      expectWait(await limiter.charge(id, 1));
    });

    it('takes nothing for a refused charge', async () => {
      const id = keyId();
      await chargeOnes(id, BURST - 1);
      expectWait(await limiter.charge(id, BURST));
      // The one push left is still there.
      expect(await limiter.charge(id, 1)).toBe(0);
    });

    it('keeps keys independent', async () => {
      const a = keyId();
      const b = keyId();
      await chargeOnes(a, BURST);
      expectWait(await limiter.charge(a, 1));
      expect(await chargeOnes(b, BURST)).toEqual(Array(BURST).fill(0));
      await limiter.refund(b, BURST);
      expectWait(await limiter.charge(a, 1));
    });

    it('honours the wait it answers: that many seconds later a push fits', async () => {
      const x = await make(FAST_LIMIT);
      try {
        const id = keyId();
        for (let i = 0; i < FAST_LIMIT.burst; i++) await x.limiter.charge(id, 1);
        const wait = await x.limiter.charge(id, 1);
        expect(Number.isInteger(wait)).toBe(true);
        expect(wait).toBeGreaterThanOrEqual(1);
        expect(wait).toBeLessThanOrEqual(Math.ceil(FAST_LIMIT.burst / FAST_LIMIT.perSecond));
        if (x.clock) x.clock.advance(wait * 1000);
        else await sleep(wait * 1000);
        expect(await x.limiter.charge(id, 1)).toBe(0);
      } finally {
        await x.close();
      }
    });
  });
}
