import { randomBytes } from 'node:crypto';
import {
  entryOf,
  occupantOf,
  type LocalEdge,
  type StoreOutcome,
  type WebhookEvent,
  type WebhookEventName,
} from '../../webhooks/events.js';
import type { WebhookStore, WebhookStoreSettings } from '../../webhooks/store.js';

interface Pending {
  /** When the last one left. */
  at: number;
  due: number;
}

/**
 * A single node's occupancy and webhook queue, in this process: the node's own edges are the
 * cluster's transitions. Same behaviour as the Redis store (the shared contract suite runs both).
 */
export class MemoryWebhookStore implements WebhookStore {
  /** Entries up: `c\0<channel>` and `m\0<channel>\0<user>`. */
  private readonly up = new Set<string>();
  /** Vacate / removed events waiting for their delay, in due order (one delay for all). */
  private readonly due = new Map<string, Pending>();
  private readonly queue: WebhookEvent[] = [];
  private readonly boot = randomBytes(4).toString('hex');
  private seq = 0;

  constructor(private readonly settings: WebhookStoreSettings) {}

  apply(edges: readonly LocalEdge[]): Promise<StoreOutcome> {
    let dropped = 0;
    for (const e of edges) {
      const entry = entryOf(e);
      if (e.edge === 'up') {
        if (this.up.has(entry)) continue;
        this.up.add(entry);
        // Back within the delay: the pending vacate is cancelled and nothing is sent at all.
        if (this.due.delete(entry)) continue;
        dropped += this.emit(e.kind === 'channel' ? 'channel_occupied' : 'member_added', e, e.at);
      } else if (this.up.delete(entry)) {
        this.due.set(entry, { at: e.at, due: e.at + this.settings.vacateDelayMs });
      }
    }
    return Promise.resolve({ dropped });
  }

  fireDue(now: number): Promise<StoreOutcome> {
    let dropped = 0;
    for (const [entry, pending] of this.due) {
      if (pending.due > now) continue;
      this.due.delete(entry);
      const o = occupantOf(entry);
      dropped += this.emit(
        o.kind === 'channel' ? 'channel_vacated' : 'member_removed',
        o,
        pending.at,
      );
    }
    return Promise.resolve({ dropped });
  }

  heartbeat(): Promise<StoreOutcome> {
    return Promise.resolve({ dropped: 0 });
  }

  leave(now: number): Promise<StoreOutcome> {
    // Members first, then channels: member_removed goes before its channel_vacated.
    const entries = [...this.up].sort((a, b) => (a[0] === b[0] ? 0 : a[0] === 'm' ? -1 : 1));
    const edges: LocalEdge[] = entries.map((entry) => ({
      ...occupantOf(entry),
      edge: 'down',
      at: now,
    }));
    return this.apply(edges);
  }

  lead(): Promise<boolean> {
    return Promise.resolve(true);
  }

  next(max: number): Promise<WebhookEvent[]> {
    return Promise.resolve(this.queue.slice(0, max));
  }

  done(ids: readonly string[]): Promise<void> {
    const gone = new Set(ids);
    const kept = this.queue.filter((e) => !gone.has(e.id));
    this.queue.splice(0, this.queue.length, ...kept);
    return Promise.resolve();
  }

  pending(): Promise<number> {
    return Promise.resolve(this.queue.length);
  }

  /** Queues an event (if enabled); answers how many old ones were dropped for the bound. */
  private emit(
    name: WebhookEventName,
    edge: { channel: string; userId?: string },
    ts: number,
  ): number {
    if (!this.settings.events.has(name)) return 0;
    let dropped = 0;
    while (this.queue.length >= this.settings.maxPending) {
      this.queue.shift();
      dropped += 1;
    }
    const event: WebhookEvent = {
      id: `${this.boot}-${++this.seq}`,
      name,
      channel: edge.channel,
      ts,
    };
    if (edge.userId !== undefined) event.userId = edge.userId;
    this.queue.push(event);
    return dropped;
  }
}
