import type { LocalEdge, StoreOutcome, WebhookEvent, WebhookEventName } from './events.js';

/** The settings a webhook store works with. */
export interface WebhookStoreSettings {
  /** Events recorded; transitions of the others are tracked but not queued. */
  events: ReadonlySet<WebhookEventName>;
  vacateDelayMs: number;
  maxPending: number;
  /** A node silent this long is gone (its edges are taken down for it). */
  nodeTimeoutMs: number;
  /** How long one delivery request may take: the delivery lease outlives it. */
  timeoutMs: number;
}

/**
 * Where occupancy lives and webhook events wait until delivered: in this process for a single
 * node, in Redis for a cluster (a Stream read by one delivering node at a time). Every method is
 * safe to call again after a failure: edges are idempotent per node, delivery is at least once.
 */
export interface WebhookStore {
  /** Applies this node's edges, in order; a channel's or member's cluster-wide first up queues its event, its last down schedules one. */
  apply(edges: readonly LocalEdge[]): Promise<StoreOutcome>;
  /** Queues the vacate / removed events whose delay has passed and that nothing cancelled. */
  fireDue(now: number): Promise<StoreOutcome>;
  /** Says this node is alive, and takes down the edges of nodes that stopped saying so. */
  heartbeat(now: number): Promise<StoreOutcome>;
  /** Whether this node is the one delivering now (one at a time keeps events in order). */
  lead(now: number): Promise<boolean>;
  /** The oldest undelivered events, up to `max`, oldest first (the same ones again until done). */
  next(max: number): Promise<WebhookEvent[]>;
  /** These were delivered: gone for good. */
  done(ids: readonly string[]): Promise<void>;
  /** Undelivered events. */
  pending(): Promise<number>;
  /** This node stops: its edges are taken down now rather than after the node timeout. */
  leave(now: number): Promise<StoreOutcome>;
}
