import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { until } from '../support/assertions.js';
import { metricValue } from '../support/probes.js';
import { startNode, type TestClient } from '../support/nodes.js';
import { startRedis } from '../support/redis.js';
import { memberOf, startWebhookReceiver } from '../support/webhook-receiver.js';
import { captureLog } from '../support/log-capture.js';

const SECRET = 'webhook-test-secret-0123456789';
const MAX_PENDING = 3;
const CHANNELS = 7;

/**
 * The README's PUSHCAST_WEBHOOK_MAX_PENDING on the Redis store (the stream every node shares):
 * while the receiver is down the oldest undelivered events are dropped, counted and logged, and
 * the newest ones arrive in order once it is back. The memory store's version is in
 * webhooks.test.ts ("webhooks: bounded while the receiver is down").
 */
describe('webhooks on Redis: bounded while the receiver is down', () => {
  it(`keeps the newest ${MAX_PENDING} events in the stream, counts and logs the dropped ones`, async () => {
    await using redis = await startRedis();
    await using receiver = await startWebhookReceiver(SECRET);
    receiver.answer(500);
    const { logger, lines: warnings } = captureLog();
    const prefix = `bound${Math.random().toString(36).slice(2, 7)}`;
    const node = await startNode(
      {
        redisUrl: redis.url,
        redis: { keyPrefix: prefix },
        webhooks: {
          url: receiver.url,
          secret: SECRET,
          maxPending: MAX_PENDING,
          events: ['channel_occupied'],
        },
      },
      undefined,
      { logger },
    );
    const admin = new Redis(redis.url);
    const sockets: TestClient[] = [];
    try {
      // One event per channel, in join order (a node records its edges in order). The first is
      // tried and refused before the others come: the oldest dropped include one the deliverer
      // has already read from the stream (and would otherwise retry).
      sockets.push(await memberOf(node.url, 'x', 'wh:rbound0'));
      await until(() => receiver.requests.length > 0, 5000, 'a refused attempt');
      expect(receiver.requests[0]!.events.map((e) => e.channel)).toEqual(['wh:rbound0']);
      for (let i = 1; i < CHANNELS; i++)
        sockets.push(await memberOf(node.url, 'x', `wh:rbound${i}`));
      const dropped = CHANNELS - MAX_PENDING;
      await until(
        async () =>
          (await metricValue(node.url, 'pushcast_webhook_events_dropped_total')) === dropped,
        5000,
        `${dropped} events dropped`,
      );
      // The bound is on the shared stream itself, not on what one node remembers.
      expect(await admin.xlen(`${prefix}:{wh}:events`)).toBe(MAX_PENDING);
      expect(await metricValue(node.url, 'pushcast_webhook_events_pending')).toBe(MAX_PENDING);
      expect(receiver.accepted()).toEqual([]);
      const dropLines = warnings.filter((w) => w.msg.includes('oldest undelivered events dropped'));
      expect(dropLines.length).toBeGreaterThan(0);
      expect(
        dropLines.reduce((sum, w) => sum + (typeof w.dropped === 'number' ? w.dropped : 0), 0),
      ).toBe(dropped);

      receiver.answer(200);
      await until(
        () => receiver.accepted().length >= MAX_PENDING,
        20_000,
        `the ${MAX_PENDING} kept events`,
      );
      await until(
        async () => (await metricValue(node.url, 'pushcast_webhook_events_pending')) === 0,
        5000,
        'nothing pending once delivered',
      );
      const delivered = receiver.accepted();
      expect(delivered.map((e) => e.channel)).toEqual(
        Array.from({ length: MAX_PENDING }, (_, k) => `wh:rbound${dropped + k}`),
      );
      expect(delivered.every((e) => e.name === 'channel_occupied')).toBe(true);
      expect(await metricValue(node.url, 'pushcast_webhook_events_dropped_total')).toBe(dropped);
      expect(await metricValue(node.url, 'pushcast_webhook_events_sent_total')).toBe(MAX_PENDING);
      expect(receiver.requests.every((r) => r.signed)).toBe(true);
    } finally {
      for (const s of sockets) s.close();
      admin.disconnect();
      await node.stop();
    }
  });
});
