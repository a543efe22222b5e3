import { afterAll, beforeAll, describe, expect } from 'vitest';
import {
  CLAIM_TTL_S,
  type IdempotencyKey,
  type IdempotencyStore,
  type StoredResponse,
} from '../../src/delivery/idempotency.js';
import {
  contractCases,
  eventually,
  type KnownFailures,
  type ManualClock,
} from '../support/contracts.js';

/**
 * What every `IdempotencyStore` promises (src/delivery/idempotency.ts): the life of a key
 * (new → busy → done / resume → …), fingerprints, abort, owners kept apart, and TTLs. Each
 * implementation's test file calls `idempotencyContract` with a factory.
 */
export interface IdempotencyHarness {
  store: IdempotencyStore;
  /** The clock the store reads, if it takes one; absent: real time. */
  clock?: ManualClock;
  close(): Promise<void>;
}

/** Answers are kept this long in the stores of the TTL cases (short: real-time stores expire). */
export const CONTRACT_TTL_S = 1;
/** And this long in the store the other cases share: nothing expires under them, however slow. */
export const LONG_TTL_S = 3600;
const TTL_MS = CONTRACT_TTL_S * 1000;

/** `make` builds the store under test keeping answers `ttlS` seconds. */
export type MakeIdempotencyStore = (ttlS: number) => Promise<IdempotencyHarness>;

export function idempotencyContract(
  name: string,
  make: MakeIdempotencyStore,
  known?: KnownFailures,
): void {
  const suite = `IdempotencyStore contract: ${name}`;
  describe(suite, () => {
    const it = contractCases(suite, known);
    let h: IdempotencyHarness;
    let store: IdempotencyStore;
    beforeAll(async () => {
      h = await make(LONG_TTL_S);
      store = h.store;
    });
    afterAll(async () => {
      await h?.close();
    });

    // Every case uses an owner of its own.
    const run = Math.random().toString(36).slice(2, 8);
    let owners = 0;
    const owner = (): string => `owner-${run}-${++owners}`;
    const key = (k = 'k1', o = owner()): IdempotencyKey => ({ owner: o, key: k });
    const response = (body: unknown = { id: 'push-1' }, status = 200): StoredResponse => ({
      status,
      body,
    });
    /**
     * Runs a case on a store of its own (and its own clock), so the TTL cases, which move a clock
     * or wait for real time, can run side by side.
     */
    const own = async (
      run: (
        x: IdempotencyHarness,
        afterTtl: (gone: () => Promise<boolean>) => Promise<void>,
      ) => Promise<void>,
    ) => {
      const x = await make(CONTRACT_TTL_S);
      /** Lets the answer TTL pass: by the clock, or by waiting (bounded) until `gone` holds. */
      const afterTtl = async (gone: () => Promise<boolean>): Promise<void> => {
        if (x.clock) {
          x.clock.advance(TTL_MS);
          if (!(await gone())) throw new Error('still there once the TTL passed');
        } else await eventually(gone, TTL_MS + 5000, 'the idempotency TTL to pass');
      };
      try {
        await run(x, afterTtl);
      } finally {
        await x.close();
      }
    };

    describe('begin, complete, abort', () => {
      it('answers new for a key never seen', async () => {
        expect(await store.begin(key(), 'f')).toEqual({ state: 'new' });
      });

      it('answers busy to a second begin while the first holds the key', async () => {
        const k = key();
        expect(await store.begin(k, 'f')).toEqual({ state: 'new' });
        expect(await store.begin(k, 'f')).toEqual({ state: 'busy' });
        expect(await store.begin(k, 'f')).toEqual({ state: 'busy' });
      });

      it('answers only one of two begins at once new, the other busy', async () => {
        const k = key();
        const answers = await Promise.all([store.begin(k, 'f'), store.begin(k, 'f')]);
        expect(answers.map((a) => a.state).sort()).toEqual(['busy', 'new']);
      });

      it('answers mismatch to a begin with another fingerprint while the key is held', async () => {
        const k = key();
        await store.begin(k, 'f');
        expect(await store.begin(k, 'other')).toEqual({ state: 'mismatch' });
        // The holder is not disturbed.
        expect(await store.begin(k, 'f')).toEqual({ state: 'busy' });
      });

      it('answers done with the stored response after complete(final), every time', async () => {
        const k = key();
        const r = response({ id: 'x', nested: [1, { a: 'é ✓' }], n: null }, 200);
        await store.begin(k, 'f');
        await store.complete(k, 'f', r, true);
        expect(await store.begin(k, 'f')).toEqual({ state: 'done', response: r });
        expect(await store.begin(k, 'f')).toEqual({ state: 'done', response: r });
      });

      it('answers mismatch for another fingerprint after complete(final)', async () => {
        const k = key();
        await store.begin(k, 'f');
        await store.complete(k, 'f', response(), true);
        expect(await store.begin(k, 'other')).toEqual({ state: 'mismatch' });
        expect((await store.begin(k, 'f')).state).toBe('done');
      });

      it('answers resume with the partial response after complete(final: false), then busy while resumed', async () => {
        const k = key();
        const partial = response({ results: ['ok', 'unavailable'] });
        await store.begin(k, 'f');
        await store.complete(k, 'f', partial, false);
        expect(await store.begin(k, 'f')).toEqual({ state: 'resume', response: partial });
        expect(await store.begin(k, 'f')).toEqual({ state: 'busy' });
        expect(await store.begin(k, 'other')).toEqual({ state: 'mismatch' });
      });

      it('gives a resumed claim back to its partial answer on abort (not forgotten)', async () => {
        const k = key();
        const partial = response({ results: ['ok', 'unavailable'] });
        await store.begin(k, 'f');
        await store.complete(k, 'f', partial, false);
        expect((await store.begin(k, 'f')).state).toBe('resume');
        await store.abort(k);
        expect(await store.begin(k, 'f')).toEqual({ state: 'resume', response: partial });
      });

      it('answers done with the new response once a resumed claim completes', async () => {
        const k = key();
        await store.begin(k, 'f');
        await store.complete(k, 'f', response({ results: ['ok', 'unavailable'] }), false);
        await store.begin(k, 'f');
        const final = response({ results: ['ok', 'ok'] });
        await store.complete(k, 'f', final, true);
        expect(await store.begin(k, 'f')).toEqual({ state: 'done', response: final });
      });

      it('forgets a new claim on abort: the next begin is new, whatever its fingerprint', async () => {
        const k = key();
        await store.begin(k, 'f');
        await store.abort(k);
        expect(await store.begin(k, 'other')).toEqual({ state: 'new' });
      });

      it('does nothing on abort of a key never seen', async () => {
        const k = key();
        await expect(store.abort(k)).resolves.toBeUndefined();
        expect(await store.begin(k, 'f')).toEqual({ state: 'new' });
      });

      it('leaves a final answer alone on abort', async () => {
        // A claim whose request outlived CLAIM_TTL_S can abort after another request with the
        // key completed: that answer must stay final, or a retry resumes and pushes again.
        const k = key();
        const r = response();
        await store.begin(k, 'f');
        await store.complete(k, 'f', r, true);
        await store.abort(k);
        expect(await store.begin(k, 'f')).toEqual({ state: 'done', response: r });
      });

      it('treats fingerprints as opaque strings', async () => {
        for (const fingerprint of ['a|b', '|', 'p|x|{}', 'ünïcödé', ' ']) {
          const k = key();
          const r = response({ fingerprint });
          expect(await store.begin(k, fingerprint)).toEqual({ state: 'new' });
          expect(await store.begin(k, fingerprint)).toEqual({ state: 'busy' });
          await store.complete(k, fingerprint, r, true);
          expect(await store.begin(k, fingerprint)).toEqual({ state: 'done', response: r });
          expect(await store.begin(k, `${fingerprint}!`)).toEqual({ state: 'mismatch' });
        }
      });
    });

    describe('owners and keys', () => {
      it('keeps the same key of different owners apart', async () => {
        const a = key('same');
        const b = key('same');
        expect(await store.begin(a, 'fa')).toEqual({ state: 'new' });
        expect(await store.begin(b, 'fb')).toEqual({ state: 'new' });
        await store.complete(a, 'fa', response('a'), true);
        expect(await store.begin(b, 'fb')).toEqual({ state: 'busy' });
        await store.abort(b);
        expect(await store.begin(a, 'fa')).toEqual({ state: 'done', response: response('a') });
        expect(await store.begin(b, 'fb')).toEqual({ state: 'new' });
      });

      it('never lets owner and key meet across a ":" (or an escape of one)', async () => {
        const base = owner();
        // Joined naively with ":", every one of these would be `<base>:x:y`.
        const pairs: IdempotencyKey[] = [
          { owner: `${base}:x`, key: 'y' },
          { owner: base, key: 'x:y' },
          { owner: `${base}%3Ax`, key: 'y' },
          { owner: `${base}:x:y`, key: '' },
          { owner: `${base}{x}`, key: 'y' },
        ];
        for (const [i, k] of pairs.entries()) {
          expect(await store.begin(k, `f${i}`)).toEqual({ state: 'new' });
          await store.complete(k, `f${i}`, response(i), true);
        }
        for (const [i, k] of pairs.entries())
          expect(await store.begin(k, `f${i}`)).toEqual({ state: 'done', response: response(i) });
      });

      it('keeps different keys of one owner apart', async () => {
        const o = owner();
        await store.begin(key('k1', o), 'f');
        await store.complete(key('k1', o), 'f', response(1), true);
        expect(await store.begin(key('k2', o), 'f')).toEqual({ state: 'new' });
        expect(await store.begin(key('K1', o), 'f')).toEqual({ state: 'new' });
      });
    });

    describe.concurrent('TTL', () => {
      it('keeps a final answer until ttlS has passed', (ctx) =>
        own(async ({ store, clock }) => {
          const k = key();
          await store.begin(k, 'f');
          await store.complete(k, 'f', response(), true);
          // Without an injected clock (Redis keeps its own): kept right after, at least.
          if (!clock) {
            ctx.expect((await store.begin(k, 'f')).state).toBe('done');
            return;
          }
          clock.advance(TTL_MS - 1);
          ctx.expect((await store.begin(k, 'f')).state).toBe('done');
          clock.advance(1);
          ctx.expect(await store.begin(k, 'f')).toEqual({ state: 'new' });
        }));

      it('forgets a final answer once ttlS has passed: the next begin is new', (ctx) =>
        own(async ({ store, clock }, afterTtl) => {
          const k = key();
          const started = Date.now();
          await store.begin(k, 'f');
          await store.complete(k, 'f', response(), true);
          // Asked with another fingerprint: `mismatch` while it is kept, which changes nothing.
          await afterTtl(async () => (await store.begin(k, 'other')).state === 'new');
          if (!clock) ctx.expect(Date.now() - started).toBeGreaterThanOrEqual(TTL_MS - 10);
        }));

      it('forgets a partial answer once ttlS has passed', () =>
        own(async ({ store }, afterTtl) => {
          const k = key();
          await store.begin(k, 'f');
          await store.complete(k, 'f', response({ results: ['unavailable'] }), false);
          await afterTtl(async () => (await store.begin(k, 'other')).state === 'new');
        }));

      it('lets a claim nobody completes go after CLAIM_TTL_S', (ctx) =>
        own(async ({ store, clock }) => {
          const k = key();
          await store.begin(k, 'f');
          // Without an injected clock (CLAIM_TTL_S is a minute): held right after, at least.
          if (!clock) {
            ctx.expect(await store.begin(k, 'f')).toEqual({ state: 'busy' });
            return;
          }
          clock.advance(CLAIM_TTL_S * 1000 - 1);
          ctx.expect(await store.begin(k, 'f')).toEqual({ state: 'busy' });
          clock.advance(1);
          ctx.expect(await store.begin(k, 'other')).toEqual({ state: 'new' });
        }));
    });
  });
}
