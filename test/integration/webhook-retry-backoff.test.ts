import { describe, expect, it } from 'vitest';
import { until } from '../support/assertions.js';
import { metricValue } from '../support/probes.js';
import { startNode } from '../support/nodes.js';
import { memberOf, startWebhookReceiver } from '../support/webhook-receiver.js';

const SECRET = 'webhook-test-secret-0123456789';
/** Refused attempts before the receiver answers 2xx: gaps of up to 1, 2, 4 and 8 s (about 15 s in all). */
const FAILURES = 4;
/**
 * Beyond the schedule a retry may come later by up to one delivery tick (250 ms in
 * src/webhooks/webhooks.ts) plus the request itself; the rest is room for a busy machine.
 */
const LATE_MS = 1000;

/**
 * The README's "retried with exponential backoff (1 s doubling to 30 s, with jitter)": after the
 * n-th failure in a row the next attempt waits between half and all of min(30 s, 1 s * 2^(n-1)).
 * The 30 s cap is not reached here (it takes six failures and about a minute) and the jitter is
 * only bounded, not measured: one sample per attempt cannot tell jitter from noise. Both are
 * checked on the schedule itself, `retryDelayMs`, in test/unit/webhook-backoff.test.ts.
 */
describe('webhook retries', () => {
  it(`back off 0.5-1 s, 1-2 s, 2-4 s, 4-8 s after ${FAILURES} failures, resending the same events`, async () => {
    await using receiver = await startWebhookReceiver(SECRET);
    receiver.answer(500, FAILURES);
    const node = await startNode({
      webhooks: { url: receiver.url, secret: SECRET, events: ['channel_occupied'] },
    });
    try {
      const socket = await memberOf(node.url, 'x', 'wh:backoff');
      await until(
        () => receiver.accepted().length > 0,
        25_000,
        `delivery after ${FAILURES} refused attempts`,
      );
      const attempts = receiver.requests;
      expect(attempts).toHaveLength(FAILURES + 1);
      const gaps = attempts.slice(1).map((r, i) => r.receivedAt - attempts[i]!.receivedAt);
      const schedule = gaps.map((_, n) => 1000 * 2 ** n);
      const report = gaps.map((g, n) => `${Math.round(g)} ms (${schedule[n]! / 2}-${schedule[n]})`);
      for (const [n, gap] of gaps.entries()) {
        expect(gap, `gap ${n + 1}: ${report.join(', ')}`).toBeGreaterThanOrEqual(schedule[n]! / 2);
        expect(gap, `gap ${n + 1}: ${report.join(', ')}`).toBeLessThanOrEqual(
          schedule[n]! + LATE_MS,
        );
      }
      // A retry is the same request again: the same one event, under the same id.
      const ids = attempts.map((r) => r.events.map((e) => e.id).join(','));
      expect(new Set(ids).size).toBe(1);
      expect(attempts[0]!.events).toHaveLength(1);
      expect(attempts.every((r) => r.signed)).toBe(true);
      expect(await metricValue(node.url, 'pushcast_webhook_requests_failed_total')).toBe(FAILURES);
      expect(await metricValue(node.url, 'pushcast_webhook_requests_retried_total')).toBe(FAILURES);
      expect(await metricValue(node.url, 'pushcast_webhook_events_sent_total')).toBe(1);
      socket.close();
    } finally {
      await node.stop();
    }
  });
});
