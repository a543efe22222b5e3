import { afterAll, beforeAll, describe, expect } from 'vitest';
import type { Config } from '../../src/config/schema.js';
import type { HistoryPage } from '../../src/delivery/bus.js';
import { HistoryPolicy } from '../../src/delivery/history-policy.js';
import {
  messageHead,
  type ChannelMessage,
  type PreparedMessage,
} from '../../src/delivery/message.js';
import { parseOffset } from '../../src/delivery/offset.js';
import {
  contractCases,
  eventually,
  sleep,
  type BusHarness,
  type KnownFailures,
} from '../support/contracts.js';

/**
 * What every `Bus` promises (src/delivery/bus.ts), whatever keeps the history: offsets, history
 * pages (since, limit, complete), size trimming, history off, position(), TTL, delivery to this
 * node's subscriptions, multi-channel publishes, ready() and close(). Each implementation's test
 * file calls `busContract` with a factory (the model: hono's router `common.case.test.ts`).
 *
 * The contract owns the history settings, so every implementation is held to the same numbers:
 * channel names pick the policy by prefix.
 */
export const CONTRACT_HISTORY: Config['history'] = {
  size: 100,
  ttlS: 60,
  channels: [
    { pattern: 'small:*', size: 5 },
    { pattern: 'one:*', size: 1 },
    { pattern: 'off:*', size: 0 },
    { pattern: 'ttl:*', ttlS: 1 },
  ],
};
const SMALL = 5;
const TTL_MS = 1000;

/**
 * Where RedisBus (both modes) breaks the contract today. Kept here, not in each mode's file, so
 * the two modes cannot drift apart.
 */
export const REDIS_BUS_KNOWN_FAILURES: KnownFailures = {};

/** `make` builds the implementation under test with the given history policy. */
export type MakeBus = (history: HistoryPolicy) => Promise<BusHarness>;

export function busContract(name: string, make: MakeBus, known?: KnownFailures): void {
  const suite = `Bus contract: ${name}`;
  describe(suite, () => {
    const policy = new HistoryPolicy(CONTRACT_HISTORY);
    const it = contractCases(suite, known);
    let h: BusHarness;
    beforeAll(async () => {
      h = await make(policy);
    });
    afterAll(async () => {
      await h?.close();
    });

    // Every case uses channels of its own: `<policy prefix>:<run>-<n>`.
    const run = Math.random().toString(36).slice(2, 8);
    let channels = 0;
    const channel = (kind: 'c' | 'small' | 'one' | 'off' | 'ttl'): string =>
      `${kind}:${run}-${++channels}`;
    let pushes = 0;
    const message = (ch: string): PreparedMessage => {
      pushes += 1;
      const data = { n: pushes, text: `payload ${pushes}` };
      const id = `push${pushes}`;
      const ts = 1_700_000_000_000 + pushes;
      return {
        channel: ch,
        event: 'e',
        data,
        id,
        ts,
        head: messageHead(ch, 'e', JSON.stringify(data), id, ts),
      };
    };
    /** The message a subscriber or history answers for a published one. */
    const expected = (m: PreparedMessage, offset: string | undefined): ChannelMessage => ({
      channel: m.channel,
      event: m.event,
      data: m.data,
      id: m.id,
      ts: m.ts,
      ...(offset !== undefined ? { offset } : {}),
    });
    /** Helpers on one harness (the suite's, or a case's own). */
    const using = (x: BusHarness) => {
      const page = (ch: string, since?: string, limit = 1000): Promise<HistoryPage> =>
        x.bus.history(ch, { since, limit });
      return {
        page,
        /** Publishes `count` messages to one channel, one publish each: messages and offsets. */
        async pushSome(ch: string, count: number) {
          const sent: Array<{ message: PreparedMessage; offset: string }> = [];
          for (let i = 0; i < count; i++) {
            const m = message(ch);
            const [offset] = await x.bus.publish([m]);
            sent.push({ message: m, offset: offset! });
          }
          return sent;
        },
        /** Moves time on: the injected clock where the bus takes one, else real time. */
        async elapse(ms: number): Promise<void> {
          if (x.clock) x.clock.advance(ms);
          else await sleep(ms);
        },
        /** Lets the `ttl:*` TTL pass: by the clock, or by waiting (bounded) until `gone` holds. */
        async afterTtl(gone: () => Promise<boolean>): Promise<void> {
          if (x.clock) {
            x.clock.advance(TTL_MS);
            if (!(await gone())) throw new Error('still there once the TTL passed');
          } else await eventually(gone, TTL_MS + 5000, 'the history TTL to pass');
        },
        noHistory: async (ch: string): Promise<boolean> => (await page(ch)).top === undefined,
      };
    };
    const pushSome = (ch: string, count: number) => using(h).pushSome(ch, count);
    const page = (ch: string, since?: string, limit?: number) => using(h).page(ch, since, limit);
    /**
     * Runs a case on a harness of its own (closed after), so cases that move a clock or wait for
     * real time can run side by side.
     */
    const own = async (run: (x: BusHarness, t: ReturnType<typeof using>) => Promise<void>) => {
      const x = await make(policy);
      try {
        await run(x, using(x));
      } finally {
        await x.close();
      }
    };
    const n = (offset: string | undefined): number => parseOffset(offset)!.n;
    const epoch = (offset: string | undefined): string => parseOffset(offset)!.epoch;

    it('is ready() once made', () => {
      expect(h.bus.ready()).toBe(true);
    });

    describe('offsets', () => {
      it('numbers a channel’s messages <epoch>:1, :2, :3… in one epoch', async () => {
        const ch = channel('c');
        const offsets = (await pushSome(ch, 5)).map((s) => s.offset);
        for (const o of offsets) expect(o).toMatch(/^[A-Za-z0-9]{1,32}:\d+$/);
        expect(offsets.map(n)).toEqual([1, 2, 3, 4, 5]);
        expect(new Set(offsets.map(epoch)).size).toBe(1);
      });

      it('numbers each channel on its own', async () => {
        const a = channel('c');
        const b = channel('c');
        await pushSome(a, 3);
        const [first] = await pushSome(b, 1);
        expect(n(first!.offset)).toBe(1);
        const [fourth] = await pushSome(a, 1);
        expect(n(fourth!.offset)).toBe(4);
      });

      it('assigns offsets in the order publishes are called, even when they overlap', async () => {
        const ch = channel('c');
        await h.listen(ch);
        const messages = Array.from({ length: 20 }, () => message(ch));
        const offsets = (await Promise.all(messages.map((m) => h.bus.publish([m])))).map(
          ([o]) => o,
        );
        expect(offsets.map(n)).toEqual(messages.map((_, i) => i + 1));
        await h.bus.settle(ch);
        expect(h.received.filter((m) => m.channel === ch)).toEqual(
          messages.map((m, i) => expected(m, offsets[i])),
        );
      });
    });

    describe('delivery', () => {
      it('hands each message to this node’s subscribers, with the offset publish returned, by the time settle() resolves', async () => {
        const ch = channel('c');
        await h.listen(ch);
        const sent = await pushSome(ch, 3);
        await h.bus.settle(ch);
        const got = h.received.filter((m) => m.channel === ch);
        expect(got).toEqual(sent.map((s) => expected(s.message, s.offset)));
        // History holds the very messages the subscribers got.
        expect((await page(ch)).messages).toEqual(got);
      });

      it('settle() resolves for a channel nobody listens to', async () => {
        await expect(h.bus.settle(channel('c'))).resolves.toBeUndefined();
      });
    });

    describe('multi-channel publish', () => {
      it('answers one offset per message, in order, undefined where history is off, and delivers each', async () => {
        const a = channel('c');
        const off = channel('off');
        const c = channel('small');
        for (const ch of [a, off, c]) await h.listen(ch);
        const batch = [message(a), message(off), message(c), message(a)];
        const offsets = await h.bus.publish(batch);
        expect(offsets).toHaveLength(4);
        expect(n(offsets[0])).toBe(1);
        expect(offsets[1]).toBeUndefined();
        expect(n(offsets[2])).toBe(1);
        expect(n(offsets[3])).toBe(2);
        expect(epoch(offsets[3])).toBe(epoch(offsets[0]));
        for (const ch of [a, off, c]) await h.bus.settle(ch);
        for (const ch of [a, off, c])
          expect(h.received.filter((m) => m.channel === ch)).toEqual(
            batch.flatMap((m, i) => (m.channel === ch ? [expected(m, offsets[i])] : [])),
          );
        expect((await page(a)).messages).toEqual([
          expected(batch[0]!, offsets[0]),
          expected(batch[3]!, offsets[3]),
        ]);
      });

      it('answers [] for an empty publish', async () => {
        expect(await h.bus.publish([])).toEqual([]);
      });
    });

    describe('history', () => {
      it('answers the newest `limit` messages, oldest first, complete, when no since is given', async () => {
        const ch = channel('c');
        const sent = await pushSome(ch, 8);
        const all = sent.map((s) => expected(s.message, s.offset));
        expect(await page(ch, undefined, 3)).toEqual({
          messages: all.slice(5),
          top: sent[7]!.offset,
          complete: true,
        });
        expect(await page(ch)).toEqual({ messages: all, top: sent[7]!.offset, complete: true });
      });

      it('answers complete: true with exactly the messages after a since within the window', async () => {
        const ch = channel('c');
        const sent = await pushSome(ch, 8);
        expect(await page(ch, sent[2]!.offset)).toEqual({
          messages: sent.slice(3).map((s) => expected(s.message, s.offset)),
          top: sent[7]!.offset,
          complete: true,
        });
      });

      it('answers at most `limit` messages after since, the oldest first', async () => {
        const ch = channel('c');
        const sent = await pushSome(ch, 8);
        expect(await page(ch, sent[2]!.offset, 2)).toEqual({
          messages: sent.slice(3, 5).map((s) => expected(s.message, s.offset)),
          top: sent[7]!.offset,
          complete: true,
        });
      });

      it('answers complete: true and no messages for a since equal to the newest offset', async () => {
        const ch = channel('c');
        const sent = await pushSome(ch, 3);
        expect(await page(ch, sent[2]!.offset)).toEqual({
          messages: [],
          top: sent[2]!.offset,
          complete: true,
        });
      });

      it('answers complete: false for a since beyond the newest offset', async () => {
        const ch = channel('c');
        const sent = await pushSome(ch, 3);
        const e = epoch(sent[0]!.offset);
        for (const since of [`${e}:4`, `${e}:1000`, `${e}:99999999999999999999`])
          expect(await page(ch, since)).toEqual({
            messages: [],
            top: sent[2]!.offset,
            complete: false,
          });
      });

      it('answers complete: false for a since from another epoch', async () => {
        const ch = channel('c');
        const sent = await pushSome(ch, 3);
        const [elsewhere] = await pushSome(channel('c'), 1);
        const e = epoch(sent[0]!.offset);
        for (const since of [`${e}0:1`, `${epoch(elsewhere!.offset)}:1`, 'zz:0'])
          expect(await page(ch, since)).toEqual({
            messages: [],
            top: sent[2]!.offset,
            complete: false,
          });
      });

      it('answers a channel with no history: no messages, no top, complete only without a since', async () => {
        const ch = channel('c');
        expect(await page(ch)).toEqual({ messages: [], top: undefined, complete: true });
        expect(await page(ch, 'abc:1')).toEqual({ messages: [], top: undefined, complete: false });
      });

      it('answers complete: false and no messages for a malformed since', async () => {
        const ch = channel('c');
        await pushSome(ch, 2);
        for (const since of ['', 'nonsense', 'x:-1', '::', ':1', 'a'.repeat(33) + ':1']) {
          const p = await page(ch, since);
          expect(p.messages).toEqual([]);
          expect(p.complete).toBe(false);
        }
      });

      it('answers the newest offset as top even for a malformed since', async () => {
        const ch = channel('c');
        const sent = await pushSome(ch, 2);
        expect((await page(ch, 'nonsense')).top).toBe(sent[1]!.offset);
      });
    });

    describe('size trimming', () => {
      it('keeps exactly the last `size` messages', async () => {
        const ch = channel('small');
        const sent = await pushSome(ch, 12);
        expect(await page(ch)).toEqual({
          messages: sent.slice(-SMALL).map((s) => expected(s.message, s.offset)),
          top: sent[11]!.offset,
          complete: true,
        });
      });

      it('answers complete: true for a since just before the oldest kept message', async () => {
        const ch = channel('small');
        const sent = await pushSome(ch, 12);
        // Kept: 8..12; since 7 asks for exactly those.
        expect(await page(ch, sent[6]!.offset)).toEqual({
          messages: sent.slice(7).map((s) => expected(s.message, s.offset)),
          top: sent[11]!.offset,
          complete: true,
        });
      });

      it('answers complete: false for a since one before that', async () => {
        const ch = channel('small');
        const sent = await pushSome(ch, 12);
        expect(await page(ch, sent[5]!.offset)).toEqual({
          messages: [],
          top: sent[11]!.offset,
          complete: false,
        });
        expect((await page(ch, `${epoch(sent[0]!.offset)}:0`)).complete).toBe(false);
      });

      it('holds the same edges after many pushes (past a store’s own trimming granularity)', async () => {
        const ch = channel('small');
        const batch = Array.from({ length: 250 }, () => message(ch));
        const offsets = await h.bus.publish(batch);
        expect(offsets.map(n)).toEqual(batch.map((_, i) => i + 1));
        const kept = batch.slice(-SMALL).map((m, i) => expected(m, offsets[250 - SMALL + i]));
        expect(await page(ch)).toEqual({ messages: kept, top: offsets[249], complete: true });
        expect(await page(ch, offsets[249 - SMALL])).toEqual({
          messages: kept,
          top: offsets[249],
          complete: true,
        });
        expect((await page(ch, offsets[248 - SMALL])).complete).toBe(false);
      });

      it('keeps one message at size 1: complete from the one before it, not from earlier', async () => {
        const ch = channel('one');
        const sent = await pushSome(ch, 3);
        const last = [expected(sent[2]!.message, sent[2]!.offset)];
        expect(await page(ch)).toEqual({ messages: last, top: sent[2]!.offset, complete: true });
        expect(await page(ch, sent[1]!.offset)).toEqual({
          messages: last,
          top: sent[2]!.offset,
          complete: true,
        });
        expect((await page(ch, sent[0]!.offset)).complete).toBe(false);
      });
    });

    describe('history off (size 0)', () => {
      it('publishes without an offset, and delivers the message without one', async () => {
        const ch = channel('off');
        await h.listen(ch);
        const m = message(ch);
        expect(await h.bus.publish([m])).toEqual([undefined]);
        await h.bus.settle(ch);
        const got = h.received.filter((r) => r.channel === ch);
        expect(got).toEqual([expected(m, undefined)]);
        expect('offset' in got[0]!).toBe(false);
      });

      it('keeps no history and has no position', async () => {
        const ch = channel('off');
        await pushSome(ch, 3);
        expect(await page(ch)).toEqual({ messages: [], top: undefined, complete: true });
        expect(await page(ch, 'abc:0')).toEqual({ messages: [], top: undefined, complete: false });
        expect(await h.bus.position(ch)).toBeUndefined();
        expect(await page(ch)).toEqual({ messages: [], top: undefined, complete: true });
      });
    });

    describe('position()', () => {
      it('starts a history at <epoch>:0 for a channel without one, and answers it again until a publish', async () => {
        const ch = channel('c');
        const p = await h.bus.position(ch);
        expect(p).toMatch(/^[A-Za-z0-9]{1,32}:0$/);
        expect(await h.bus.position(ch)).toBe(p);
        expect(await page(ch)).toEqual({ messages: [], top: p, complete: true });
        expect(await page(ch, p)).toEqual({ messages: [], top: p, complete: true });
      });

      it('is continued by the next publish: <epoch>:1, recoverable from <epoch>:0', async () => {
        const ch = channel('c');
        const p = await h.bus.position(ch);
        const [first] = await pushSome(ch, 1);
        expect(first!.offset).toBe(`${epoch(p)}:1`);
        expect(await page(ch, p)).toEqual({
          messages: [expected(first!.message, first!.offset)],
          top: first!.offset,
          complete: true,
        });
        expect(await h.bus.position(ch)).toBe(first!.offset);
      });

      it('answers the newest offset of a channel with history', async () => {
        const ch = channel('small');
        const sent = await pushSome(ch, 7);
        expect(await h.bus.position(ch)).toBe(sent[6]!.offset);
      });
    });

    // Side by side: each case has its own harness (and clock), and real-time ones wait at once.
    describe.concurrent('TTL', () => {
      it('keeps a history until ttlS has passed without a push', (ctx) =>
        own(async (x, t) => {
          const clock = x.clock;
          const ch = channel('ttl');
          const sent = await t.pushSome(ch, 2);
          // Without an injected clock (Redis keeps its own): kept right after the push, at least.
          if (!clock) {
            ctx.expect((await t.page(ch, sent[0]!.offset)).complete).toBe(true);
            return;
          }
          clock.advance(TTL_MS - 1);
          ctx.expect(await t.page(ch, sent[0]!.offset)).toEqual({
            messages: [expected(sent[1]!.message, sent[1]!.offset)],
            top: sent[1]!.offset,
            complete: true,
          });
          clock.advance(1);
          ctx.expect(await t.noHistory(ch)).toBe(true);
        }));

      it('forgets a history once ttlS passes without a push: since is then complete: false, and a new epoch starts at 1', (ctx) =>
        own(async (x, t) => {
          const ch = channel('ttl');
          const started = Date.now();
          const sent = await t.pushSome(ch, 3);
          await t.afterTtl(() => t.noHistory(ch));
          // Real time: never before the TTL.
          if (!x.clock) ctx.expect(Date.now() - started).toBeGreaterThanOrEqual(TTL_MS - 10);
          ctx.expect(await t.page(ch)).toEqual({ messages: [], top: undefined, complete: true });
          ctx.expect(await t.page(ch, sent[0]!.offset)).toEqual({
            messages: [],
            top: undefined,
            complete: false,
          });
          const [again] = await t.pushSome(ch, 1);
          ctx.expect(n(again!.offset)).toBe(1);
          ctx.expect(epoch(again!.offset)).not.toBe(epoch(sent[0]!.offset));
          ctx.expect((await t.page(ch, sent[2]!.offset)).complete).toBe(false);
        }));

      it('restarts the TTL with every push', (ctx) =>
        own(async (x, t) => {
          const ch = channel('ttl');
          const [first] = await t.pushSome(ch, 1);
          await t.elapse(TTL_MS * 0.6);
          const second = Date.now();
          await t.pushSome(ch, 1);
          await t.elapse(TTL_MS * 0.6);
          // 1.2 TTL after the first push, 0.6 after the second: all still there. (Real time on
          // a machine so loaded that the answer came a whole TTL after the second push proves
          // nothing either way: not asserted.)
          const kept = await t.page(ch, `${epoch(first!.offset)}:0`);
          if (x.clock || Date.now() - second < TTL_MS - 10) {
            ctx.expect(kept.complete).toBe(true);
            ctx.expect(kept.messages.map((m) => n(m.offset))).toEqual([1, 2]);
          }
          await t.afterTtl(() => t.noHistory(ch));
          if (!x.clock) ctx.expect(Date.now() - second).toBeGreaterThanOrEqual(TTL_MS - 10);
        }));

      it('forgets a history position() started once ttlS passes; the next position is a new epoch at 0', (ctx) =>
        own(async (x, t) => {
          const ch = channel('ttl');
          const p = await x.bus.position(ch);
          ctx.expect(n(p)).toBe(0);
          await t.afterTtl(() => t.noHistory(ch));
          ctx.expect((await t.page(ch, p)).complete).toBe(false);
          const again = await x.bus.position(ch);
          ctx.expect(n(again)).toBe(0);
          ctx.expect(epoch(again)).not.toBe(epoch(p));
        }));
    });

    it('close() resolves, and again', async () => {
      const other = await make(policy);
      try {
        await expect(other.bus.close()).resolves.toBeUndefined();
        await expect(other.bus.close()).resolves.toBeUndefined();
      } finally {
        await other.close();
      }
    });
  });
}
