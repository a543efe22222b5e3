import { describe, expect, it } from 'vitest';
import { PushIdGenerator } from '../../src/delivery/push-id.js';

const CROCKFORD = /^[0-9A-HJKMNP-TV-Z]{26}$/;
const T0 = Date.UTC(2025, 0, 1);

function sortedCopy(ids: readonly string[]): string[] {
  // Plain code-unit order, as a database index or `sort` would order the text.
  return [...ids].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

describe('PushIdGenerator', () => {
  it('makes 26-character Crockford base32 ids that carry the given time', () => {
    const gen = new PushIdGenerator(Buffer.from([0, 0, 0, 0, 1]));
    const { id, ms } = gen.next(T0);
    expect(id).toMatch(CROCKFORD);
    expect(ms).toBe(T0);
    // time(10) node(8) sequence(8)
    expect(id.slice(10, 18)).toBe('00000001');
    expect(id.slice(18)).toBe('00000000');
  });

  it('is strictly increasing within one millisecond', () => {
    const gen = new PushIdGenerator();
    const ids = Array.from({ length: 1000 }, () => gen.next(T0));
    expect(new Set(ids.map((x) => x.id)).size).toBe(1000);
    expect(sortedCopy(ids.map((x) => x.id))).toEqual(ids.map((x) => x.id));
    expect(ids.every((x) => x.ms === T0)).toBe(true);
    expect(ids[1]!.id.slice(18)).toBe('00000001');
    expect(ids[999]!.id.slice(18)).toBe('000000Z7'); // 999 = 31*32 + 7
  });

  it('stays increasing when the clock steps back, and carries the last time until it catches up', () => {
    const gen = new PushIdGenerator();
    const a = gen.next(T0 + 1000);
    const b = gen.next(T0); // clock stepped back a second
    const c = gen.next(T0 + 500);
    const d = gen.next(T0 + 1001);
    expect([b.ms, c.ms]).toEqual([T0 + 1000, T0 + 1000]);
    expect(d.ms).toBe(T0 + 1001);
    expect(sortedCopy([d.id, c.id, b.id, a.id])).toEqual([a.id, b.id, c.id, d.id]);
    expect(new Set([a.id, b.id, c.id, d.id]).size).toBe(4);
  });

  it('sorts as text in the same order as its time, across digit/letter boundaries', () => {
    const gen = new PushIdGenerator();
    // Times chosen to cross base32 digit boundaries (9 -> A, Z -> 10) in the low digits.
    const times = [T0, T0 + 9, T0 + 10, T0 + 31, T0 + 32, T0 + 1023, T0 + 1024, T0 + 86_400_000];
    const ids = times.map((t) => gen.next(t).id);
    expect(sortedCopy(ids)).toEqual(ids);
    // Independent generators too: the time prefix alone decides order across ms.
    const g1 = new PushIdGenerator(Buffer.from([255, 255, 255, 255, 255]));
    const g2 = new PushIdGenerator(Buffer.from([0, 0, 0, 0, 0]));
    const early = g1.next(T0).id;
    const late = g2.next(T0 + 1).id;
    expect(early < late).toBe(true);
  });

  it('never collides between two generators, even at the same millisecond', () => {
    const g1 = new PushIdGenerator();
    const g2 = new PushIdGenerator();
    const all = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      all.add(g1.next(T0 + (i >> 4)).id);
      all.add(g2.next(T0 + (i >> 4)).id);
    }
    expect(all.size).toBe(4000);
  });

  it('uses the current time by default', () => {
    const before = Date.now();
    const { ms } = new PushIdGenerator().next();
    expect(ms).toBeGreaterThanOrEqual(before);
    expect(ms).toBeLessThanOrEqual(Date.now());
  });
});
