import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ExpirySchedule } from '../../src/realtime/expiry-schedule.js';

/**
 * The node's one timer for every session's token expiry (src/realtime/expiry-schedule.ts): each
 * entry fires at its time, never before, in time order; a removed one never fires.
 */
describe('ExpirySchedule', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 1_000_000 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  /** An entry that records when it fired. */
  const who = (name: string, fired: Array<{ name: string; at: number }>) => ({
    expire: () => fired.push({ name, at: Date.now() }),
  });

  it('fires each entry at its own time, earliest first, whatever the order they came in', () => {
    const schedule = new ExpirySchedule();
    const fired: Array<{ name: string; at: number }> = [];
    const t0 = Date.now();
    schedule.add(t0 + 300, who('c', fired));
    schedule.add(t0 + 100, who('a', fired));
    schedule.add(t0 + 200, who('b', fired));
    vi.advanceTimersByTime(99);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(fired).toEqual([{ name: 'a', at: t0 + 100 }]);
    vi.advanceTimersByTime(200);
    expect(fired).toEqual([
      { name: 'a', at: t0 + 100 },
      { name: 'b', at: t0 + 200 },
      { name: 'c', at: t0 + 300 },
    ]);
    expect(schedule.size).toBe(0);
  });

  it('never fires a removed entry, and an expiry may schedule the next one', () => {
    const schedule = new ExpirySchedule();
    const fired: Array<{ name: string; at: number }> = [];
    const t0 = Date.now();
    const gone = schedule.add(t0 + 50, who('gone', fired));
    schedule.add(t0 + 100, {
      expire: () => {
        fired.push({ name: 'first', at: Date.now() });
        schedule.add(Date.now() + 100, who('again', fired));
      },
    });
    schedule.remove(gone);
    schedule.remove(gone);
    vi.advanceTimersByTime(500);
    expect(fired).toEqual([
      { name: 'first', at: t0 + 100 },
      { name: 'again', at: t0 + 200 },
    ]);
  });

  it('waits in steps for a time past what one timer can wait (2^31 ms)', () => {
    const schedule = new ExpirySchedule();
    const fired: Array<{ name: string; at: number }> = [];
    const far = Date.now() + 2 ** 31 + 5_000;
    schedule.add(far, who('far', fired));
    vi.advanceTimersByTime(2 ** 31);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(5_000);
    expect(fired).toEqual([{ name: 'far', at: far }]);
  });

  it('fires exactly the entries not removed, each at its time, in time order (model check)', () => {
    const steps = fc.array(
      fc.oneof(
        fc.record({ add: fc.integer({ min: 0, max: 1_000 }) }),
        fc.record({ remove: fc.nat() }),
        fc.record({ wait: fc.integer({ min: 0, max: 300 }) }),
      ),
      { maxLength: 60 },
    );
    fc.assert(
      fc.property(steps, (plan) => {
        const schedule = new ExpirySchedule();
        const fired: Array<{ name: string; at: number }> = [];
        const entries: Array<{
          name: string;
          at: number;
          entry: ReturnType<ExpirySchedule['add']>;
        }> = [];
        const removed = new Set<string>();
        plan.forEach((step, n) => {
          if ('add' in step) {
            const at = Date.now() + step.add;
            entries.push({ name: `e${n}`, at, entry: schedule.add(at, who(`e${n}`, fired)) });
          } else if ('remove' in step) {
            const pick = entries[step.remove % Math.max(1, entries.length)];
            if (pick && !fired.some((f) => f.name === pick.name)) {
              schedule.remove(pick.entry);
              removed.add(pick.name);
            }
          } else vi.advanceTimersByTime(step.wait);
        });
        vi.advanceTimersByTime(2_000);
        const expected = entries
          .filter((e) => !removed.has(e.name))
          .sort((a, b) => a.at - b.at)
          .map((e) => e.name);
        expect(fired.map((f) => f.name).sort()).toEqual([...expected].sort());
        for (const f of fired) expect(f.at).toBe(entries.find((e) => e.name === f.name)!.at);
        for (let i = 1; i < fired.length; i++)
          expect(fired[i]!.at).toBeGreaterThanOrEqual(fired[i - 1]!.at);
        expect(schedule.size).toBe(0);
      }),
      { numRuns: 200 },
    );
  });
});
