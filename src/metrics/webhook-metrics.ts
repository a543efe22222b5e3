import { Counter, Gauge, type Registry } from 'prom-client';

/** The webhook figures of a node: what it sent, what failed and was retried, what waits. */
export class WebhookMetrics {
  readonly sent: Counter;
  readonly failed: Counter;
  readonly retried: Counter;
  readonly dropped: Counter;

  constructor(registry: Registry, pending: () => Promise<number>) {
    const registers = [registry];
    this.sent = new Counter({
      name: 'pushcast_webhook_events_sent_total',
      help: 'Webhook events this node delivered (answered 2xx).',
      registers,
    });
    this.failed = new Counter({
      name: 'pushcast_webhook_requests_failed_total',
      help: 'Webhook requests that failed (no answer in time, or not 2xx); each is retried.',
      registers,
    });
    this.retried = new Counter({
      name: 'pushcast_webhook_requests_retried_total',
      help: 'Webhook requests sent again after a failure.',
      registers,
    });
    this.dropped = new Counter({
      name: 'pushcast_webhook_events_dropped_total',
      help: 'Undelivered webhook events dropped, oldest first, to keep the queue within its bound.',
      registers,
    });
    new Gauge({
      name: 'pushcast_webhook_events_pending',
      help: 'Webhook events waiting to be delivered (cluster-wide with Redis).',
      registers,
      async collect() {
        // A scrape must not fail because Redis is away: the gauge keeps its last value.
        try {
          this.set(await pending());
        } catch {
          // Left as it was.
        }
      },
    });
  }
}
