import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SmallMap } from '../../src/realtime/small-map.js';

/**
 * The map a session keeps its memberships in (src/realtime/small-map.ts): one entry in fields, a
 * `Map` from the second key on. Whatever the operations, it answers as a `Map` does.
 */
describe('SmallMap', () => {
  type Op =
    | { op: 'set'; key: string; value: number | undefined }
    | { op: 'delete'; key: string }
    | { op: 'get'; key: string };
  // Few keys, the empty one among them, so that sets, deletes and gets meet the same entries.
  const key = fc.constantFrom('', 'a', 'b', 'c');
  const ops = fc.array(
    fc.oneof(
      // Undefined among the values: a key set to undefined is still there.
      fc.record({
        op: fc.constant('set' as const),
        key,
        value: fc.option(fc.integer(), { nil: undefined }),
      }),
      fc.record({ op: fc.constant('delete' as const), key }),
      fc.record({ op: fc.constant('get' as const), key }),
    ),
    { maxLength: 40 },
  );

  it('answers every get, delete, size and iteration as a Map given the same operations', () => {
    fc.assert(
      fc.property(ops, (sequence: Op[]) => {
        const small = new SmallMap<number | undefined>();
        const model = new Map<string, number | undefined>();
        for (const step of sequence) {
          if (step.op === 'set') {
            small.set(step.key, step.value);
            model.set(step.key, step.value);
          } else if (step.op === 'delete') {
            expect(small.delete(step.key)).toBe(model.delete(step.key));
          } else {
            expect(small.get(step.key)).toBe(model.get(step.key));
          }
          expect(small.size).toBe(model.size);
          expect([...small]).toEqual([...model]);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('lets its entries be deleted while it is iterated, one entry or several', () => {
    for (const keys of [['a'], ['a', 'b', 'c']]) {
      const small = new SmallMap<number>();
      keys.forEach((k, i) => small.set(k, i));
      const seen: string[] = [];
      for (const [k] of small) {
        seen.push(k);
        small.delete(k);
      }
      expect(seen).toEqual(keys);
      expect(small.size).toBe(0);
    }
  });
});
