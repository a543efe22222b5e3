import type { PushMessage, SubscriptionHandlers } from './types.js';

// How many recent push ids a subscription remembers to drop duplicates.
const SEEN_IDS = 2000;

/** One channel subscription: keeps the last offset, drops duplicates, dispatches by event. */
export class Subscription<T = unknown> {
  /** The last offset seen; handed back as `since` on rejoin. */
  offset: string | undefined;
  private readonly seen = new Set<string>();
  private readonly listeners = new Map<string, Set<(message: PushMessage<T>) => void>>();
  private active = true;

  constructor(
    readonly channel: string,
    readonly handlers: SubscriptionHandlers<T>,
    private readonly onUnsubscribe: (sub: Subscription<T>) => void,
  ) {}

  /** Listens to one event name on this channel (`*` for every event); returns a remover. */
  on(event: string, fn: (message: PushMessage<T>) => void): () => void {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(fn);
    return () => set.delete(fn);
  }

  /** Leaves the channel. */
  unsubscribe(): void {
    if (!this.active) return;
    this.active = false;
    this.onUnsubscribe(this);
  }

  /** Whether it is on: `unsubscribe()` not called, and not ended by the server (`onLeft`). */
  get subscribed(): boolean {
    return this.active;
  }

  /** @internal The server took the socket out of the channel: ends without sending a leave. */
  end(): boolean {
    if (!this.active) return false;
    this.active = false;
    return true;
  }

  /** @internal Delivers a message unless it was already delivered. */
  deliver(message: PushMessage<T>): void {
    if (!this.active || this.seen.has(message.id)) return;
    this.seen.add(message.id);
    if (this.seen.size > SEEN_IDS) {
      // Sets iterate in insertion order: drop the oldest.
      const oldest = this.seen.values().next().value;
      if (oldest !== undefined) this.seen.delete(oldest);
    }
    if (message.offset !== undefined) this.offset = message.offset;
    this.handlers.onMessage?.(message);
    for (const fn of this.listeners.get(message.event) ?? []) fn(message);
    for (const fn of this.listeners.get('*') ?? []) fn(message);
  }
}
