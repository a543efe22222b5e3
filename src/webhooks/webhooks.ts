import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Backend } from '../backend/backend.js';
import type { Config } from '../config/schema.js';
import { WebhookMetrics } from '../metrics/webhook-metrics.js';
import type { LocalEdge, StoreOutcome, WebhookEvent } from './events.js';
import { Occupancy } from './occupancy.js';
import { signWebhook } from './signature.js';
import type { WebhookStore } from './store.js';

/** How the node sends webhooks. */
export interface WebhookSettings {
  url: string;
  secret: string;
  batchMax: number;
  timeoutMs: number;
  nodeTimeoutMs: number;
}

/** How often the node looks for work: edges to record, due events, a batch to send. */
const TICK_MS = 250;
/** Edges waiting for the store at most (Redis away for long); past it the oldest go, with a warning. */
const MAX_EDGES = 100_000;
const EDGES_PER_CALL = 500;
const MAX_BACKOFF_MS = 30_000;

/**
 * The wait before the next attempt after `failures` failed ones in a row: between half and all of
 * min(30 s, 1 s * 2^(failures - 1)), uniformly (equal jitter: nodes retrying after one outage
 * spread out, and no wait is shorter than half the step). `random` is in [0, 1).
 */
export function retryDelayMs(failures: number, random: number = Math.random()): number {
  const step = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** (failures - 1));
  return step / 2 + random * (step / 2);
}

/**
 * A node's part in webhooks: it tells the store its occupancy edges (in order, again after a
 * failure), fires due vacate events, keeps its heartbeat, and, while it holds the delivery lease,
 * sends the queued events in order, in batches, signed, retried with backoff until answered 2xx.
 * One deliverer at a time is what keeps events in order per channel; a deliverer that dies leaves
 * its unconfirmed events to the next one (delivered at least once; `id` de-duplicates).
 */
export class Webhooks {
  readonly occupancy = new Occupancy((edge) => this.queue(edge));
  private readonly edges: LocalEdge[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private flushing: Promise<void> | undefined;
  /** Edges dropped for the bound since the store was last reached. */
  private edgesDropped = 0;
  private nextBeat = 0;
  private failures = 0;
  private retryAt = 0;

  constructor(
    private readonly store: WebhookStore,
    private readonly settings: WebhookSettings,
    private readonly metrics: WebhookMetrics,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      // One tick at a time: a slow receiver or Redis never stacks work up.
      this.running ??= this.tick().finally(() => (this.running = undefined));
    }, TICK_MS);
    this.timer.unref();
  }

  /** Records what is left (the sockets just closed) and hands this node's members over. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
    try {
      await this.flush();
      this.report(await this.store.leave(Date.now()));
    } catch (err) {
      // Another node takes this node's members down once its heartbeat is old enough.
      this.log.warn({ err }, 'webhooks: could not hand occupancy over at shutdown');
    }
  }

  private queue(edge: LocalEdge): void {
    if (this.edges.length >= MAX_EDGES) {
      this.edges.shift();
      // One warning per outage, not one per join or leave while the store is away.
      if (this.edgesDropped++ === 0)
        this.log.warn('webhooks: occupancy changes dropped (the store has been away for long)');
    }
    this.edges.push(edge);
    // Recorded at once, not at the next tick: edges of two nodes reach the store in the order
    // they happened (a tick apart they could swap).
    if (this.edges.length === 1)
      setImmediate(() => {
        this.flush().catch((err: unknown) =>
          this.log.debug({ err }, 'webhooks: occupancy not recorded yet, retried on the next tick'),
        );
      });
  }

  private async tick(): Promise<void> {
    const now = Date.now();
    try {
      await this.flush();
      this.report(await this.store.fireDue(now));
      if (now >= this.nextBeat) {
        const beat = await this.store.heartbeat(now);
        this.report(beat);
        // Taken for dead (stalled past the node timeout): what it holds is stated again; within
        // the vacate delay that cancels the vacates the others scheduled for it.
        if (beat.restated) for (const edge of this.occupancy.current(now)) this.queue(edge);
        this.nextBeat = now + this.settings.nodeTimeoutMs / 4;
      }
      if (now >= this.retryAt) await this.deliver();
    } catch (err) {
      this.log.warn({ err }, 'webhooks: store unavailable, will retry');
    }
  }

  /** Edges to the store in order, one call at a time; a failure leaves them queued. */
  private flush(): Promise<void> {
    this.flushing ??= this.flushNow().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  private async flushNow(): Promise<void> {
    while (this.edges.length > 0) {
      // Taken off the queue while in flight, so that the bound (which drops the oldest queued)
      // never drops one of these instead; put back in front if the store fails.
      const batch = this.edges.splice(0, EDGES_PER_CALL);
      try {
        this.report(await this.store.apply(batch));
      } catch (err) {
        this.edges.unshift(...batch);
        throw err;
      }
      if (this.edgesDropped > 0) {
        this.log.warn(
          { dropped: this.edgesDropped },
          'webhooks: store back after dropping changes',
        );
        this.edgesDropped = 0;
      }
    }
  }

  /** Sends batches until the queue is empty or a request fails (then it waits, backing off). */
  private async deliver(): Promise<void> {
    for (;;) {
      // The lease again before each batch (which renews it): a node that lost it while sending a
      // long backlog stops, so two nodes never send at once.
      if (!(await this.store.lead(Date.now()))) return;
      const events = await this.store.next(this.settings.batchMax);
      if (events.length === 0) return;
      if (this.failures > 0) this.metrics.retried.inc();
      if (!(await this.post(events))) {
        this.metrics.failed.inc();
        this.failures += 1;
        this.retryAt = Date.now() + retryDelayMs(this.failures);
        return;
      }
      this.failures = 0;
      await this.store.done(events.map((e) => e.id));
      this.metrics.sent.inc(events.length);
    }
  }

  /** One signed POST; true when answered 2xx in time. */
  private async post(events: WebhookEvent[]): Promise<boolean> {
    const body = JSON.stringify({ events });
    const timestamp = String(Math.floor(Date.now() / 1000));
    try {
      const res = await fetch(this.settings.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'pushcast-webhooks',
          'x-pushcast-timestamp': timestamp,
          'x-pushcast-signature': signWebhook(this.settings.secret, timestamp, body),
        },
        body,
        signal: AbortSignal.timeout(this.settings.timeoutMs),
      });
      await res.arrayBuffer().catch(() => undefined);
      if (res.ok) return true;
      this.log.warn({ status: res.status, events: events.length }, 'webhooks: receiver refused');
    } catch (err) {
      this.log.warn(
        { err: (err as Error).message, events: events.length },
        'webhooks: request failed',
      );
    }
    return false;
  }

  private report(outcome: StoreOutcome): void {
    if (outcome.dropped === 0) return;
    this.metrics.dropped.inc(outcome.dropped);
    this.log.warn(
      { dropped: outcome.dropped },
      'webhooks: oldest undelivered events dropped (queue full: the receiver has been down for long)',
    );
  }
}

/** The node's webhooks as the settings ask: undefined without a receiver URL. */
export function webhooksFor(
  config: Config,
  backend: Pick<Backend, 'webhookStore'>,
  registry: Registry,
  log: Logger,
  node: string,
): Webhooks | undefined {
  const { url, secret, events, vacateDelayMs, maxPending, nodeTimeoutMs } = config.webhooks;
  if (url === undefined || secret === undefined) return undefined;
  const store = backend.webhookStore(node, {
    events: new Set(events),
    vacateDelayMs,
    maxPending,
    nodeTimeoutMs,
    timeoutMs: config.webhooks.timeoutMs,
  });
  const metrics = new WebhookMetrics(registry, () => store.pending());
  const { batchMax, timeoutMs } = config.webhooks;
  const settings = { url, secret, batchMax, timeoutMs, nodeTimeoutMs };
  return new Webhooks(store, settings, metrics, log.child({ part: 'webhooks' }));
}
