import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryBus } from '../../src/backend/memory/memory-bus.js';
import { HistoryPolicy } from '../../src/delivery/history-policy.js';
import { messageHead, type PreparedMessage } from '../../src/delivery/message.js';

// On one node, history is bounded by bytes: past the bound, the channels pushed to least recently
// are dropped whole, never the one just pushed. The bus keeps that order in its map of channel
// logs and skips the reorder when the pushed channel is last already; this checks its choices
// against a plain model for random pushes, joins (which create a channel's log) and expiries.

const CHANNELS = ['c:0', 'c:1', 'c:2', 'c:3', 'c:4'];
const RING = 3; // messages kept per channel
const TTL_S = 60;

const message = (channel: string, n: number): PreparedMessage => {
  const id = `id${String(n).padStart(8, '0')}`;
  return { channel, id, ts: 1, event: 'e', data: 1, head: messageHead(channel, 'e', '1', id, 1) };
};

type Op =
  | { kind: 'push'; channel: string }
  | { kind: 'join'; channel: string }
  | { kind: 'wait'; s: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom(...CHANNELS).map((channel) => ({ kind: 'push' as const, channel })),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom(...CHANNELS).map((channel) => ({ kind: 'join' as const, channel })),
  },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 1, max: 70 }).map((s) => ({ kind: 'wait' as const, s })),
  },
);

/** Bytes one message of the test takes in history (same length for every channel and id). */
function messageBytes(): number {
  const bus = new MemoryBus(
    () => undefined,
    new HistoryPolicy({ size: RING, ttlS: TTL_S, channels: [] }),
  );
  void bus.publish([message('c:0', 0)]);
  const bytes = bus.historyBytes;
  void bus.close();
  return bytes;
}

describe('memory bus: the least recently pushed channels are evicted first', () => {
  it('keeps the same channels as a model of the order, for any pushes, joins and waits', async () => {
    const unit = messageBytes();
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 10 }),
        fc.array(op, { maxLength: 60 }),
        async (room, ops) => {
          let now = 1_700_000_000_000;
          const bus = new MemoryBus(
            () => undefined,
            new HistoryPolicy({ size: RING, ttlS: TTL_S, channels: [] }),
            { maxBytes: room * unit, now: () => now },
          );
          // The model: channels held, least recently pushed (or created) first, with their counts.
          // An expired channel still counts until it is next touched (or evicted).
          let order: Array<{ channel: string; count: number; expiresAt: number }> = [];
          let n = 0;
          for (const o of ops) {
            if (o.kind === 'wait') {
              now += o.s * 1000;
              continue;
            }
            order = order.filter((c) => c.channel !== o.channel || c.expiresAt > now);
            const at = order.findIndex((c) => c.channel === o.channel);
            if (o.kind === 'join') {
              await bus.position(o.channel);
              if (at === -1)
                order.push({ channel: o.channel, count: 0, expiresAt: now + TTL_S * 1000 });
              continue;
            }
            await bus.publish([message(o.channel, n++)]);
            const entry =
              at === -1 ? { channel: o.channel, count: 0, expiresAt: 0 } : order.splice(at, 1)[0]!;
            entry.count = Math.min(RING, entry.count + 1);
            entry.expiresAt = now + TTL_S * 1000;
            order.push(entry);
            const total = (): number => order.reduce((a, c) => a + c.count, 0);
            for (let i = 0; i < order.length - 1 && total() > room;) {
              if (order[i]!.channel === o.channel) i += 1;
              else order.splice(i, 1);
            }
          }
          order = order.filter((c) => c.expiresAt > now);
          for (const channel of CHANNELS) {
            const page = await bus.history(channel, { limit: RING });
            const kept = order.find((c) => c.channel === channel);
            const where = `${channel} after ${JSON.stringify(ops)}`;
            // Held (even with no message yet, after a join) or not: a dropped log loses its epoch.
            expect(page.top !== undefined, where).toBe(kept !== undefined);
            expect(page.messages.length, where).toBe(kept?.count ?? 0);
          }
          expect(bus.historyBytes).toBe(order.reduce((a, c) => a + c.count, 0) * unit);
          await bus.close();
        },
      ),
      { numRuns: 500 },
    );
  });
});
