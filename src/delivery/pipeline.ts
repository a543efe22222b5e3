import { unavailable } from '../errors.js';
import type { Bus } from './bus.js';
import { messageHead, type PreparedMessage } from './message.js';
import type { PushIdGenerator } from './push-id.js';

/**
 * Most messages (pushes times their channels) handed to the bus in one call: a Redis script holds
 * no more than one push to the most channels a push may name (100 by default) does, so it holds
 * Redis no longer, and ends within its deadline as surely.
 */
const HANDOVER_MAX_MESSAGES = 100;

/** A validated push: channels deduplicated, data already serialized once. */
export interface PushRequest {
  channels: string[];
  event: string;
  data: unknown;
  dataJson: string;
}

/** A push's id and the time it was accepted (ms since epoch). */
export interface PushIdentity {
  id: string;
  ms: number;
}

/** A push as processed: what the API answers. */
export interface PushResult {
  id: string;
  channel: string[];
  event: string;
  data: unknown;
  ts: number;
  /** Offset per channel, where history is on. */
  offsets: Record<string, string>;
}

/** What became of one push of {@link PushPipeline.pushMany}. */
export type PushOutcome =
  { result: PushResult; error?: undefined } | { result?: undefined; error: unknown };

/**
 * The in-flight pipeline: every accepted push gets an id and is handed to the bus (history append
 * and fan-out). The set of pushes accepted but not yet handed over is bounded; past the bound, and
 * while draining, pushes are refused with 503 before anything is published.
 */
export class PushPipeline {
  private inflight = 0;
  private draining = false;
  private idleWaiters: Array<() => void> = [];

  private readonly requestedListeners: Array<(result: PushResult) => void> = [];

  constructor(
    private readonly bus: Bus,
    private readonly ids: PushIdGenerator,
    private readonly maxInflight: number,
  ) {}

  /** Calls `listener` with every push once it is recorded and handed over (the `requested` event). */
  onRequested(listener: (result: PushResult) => void): void {
    this.requestedListeners.push(listener);
  }

  /** Pushes accepted and not yet handed to the bus. */
  get inflightCount(): number {
    return this.inflight;
  }

  /** A new push identity (id and acceptance time), for a push that may have to be retried. */
  identity(): PushIdentity {
    return this.ids.next();
  }

  /**
   * Publishes a push to each of its channels; resolves once all are recorded and handed over. A
   * retry passes the identity of its first attempt: on a Redis Cluster each channel refuses an id
   * it already holds, so the retry completes the push only where it is missing.
   */
  async push(request: PushRequest, identity?: PushIdentity): Promise<PushResult> {
    const [outcome] = await this.pushMany([{ request, identity: identity ?? this.ids.next() }]);
    if (outcome!.result === undefined) throw outcome!.error;
    return outcome!.result;
  }

  /**
   * Publishes several pushes (a batch's slots), in order. Where the bus publishes all or nothing
   * (memory, one Redis) they are handed over together, up to {@link HANDOVER_MAX_MESSAGES}
   * messages at a time: one publish script for many pushes instead of one per push. On a Redis
   * Cluster each push is handed over alone, so a slot that failed there fails only its own push.
   * Each push is admitted on its own (past the in-flight bound it fails with 503 alone); a failed
   * hand-over fails each of its pushes, each keeping its identity for a retry. Resolves with one
   * outcome per push, in order.
   */
  async pushMany(
    items: ReadonlyArray<{ request: PushRequest; identity: PushIdentity }>,
  ): Promise<PushOutcome[]> {
    const outcomes = new Array<PushOutcome>(items.length);
    const admitted: number[] = [];
    for (let i = 0; i < items.length; i++) {
      try {
        this.admit();
      } catch (error) {
        outcomes[i] = { error };
        continue;
      }
      this.inflight += 1;
      admitted.push(i);
    }
    try {
      await Promise.all(
        this.handOvers(admitted, items).map(async (slots) => {
          let results: PushOutcome[];
          try {
            results = await this.handOver(slots.map((i) => items[i]!));
          } catch (error) {
            results = slots.map(() => ({ error }));
          }
          slots.forEach((i, k) => (outcomes[i] = results[k]!));
        }),
      );
      return outcomes;
    } finally {
      this.inflight -= admitted.length;
      if (this.inflight === 0) this.wakeIdle();
    }
  }

  /** The admitted pushes, grouped into hand-overs (see {@link pushMany}). */
  private handOvers(
    admitted: readonly number[],
    items: ReadonlyArray<{ request: PushRequest }>,
  ): number[][] {
    if (!this.bus.allOrNothing) return admitted.map((i) => [i]);
    const groups: number[][] = [];
    let group: number[] = [];
    let messages = 0;
    for (const i of admitted) {
      const n = items[i]!.request.channels.length;
      if (group.length > 0 && messages + n > HANDOVER_MAX_MESSAGES) {
        groups.push(group);
        group = [];
        messages = 0;
      }
      group.push(i);
      messages += n;
    }
    if (group.length > 0) groups.push(group);
    return groups;
  }

  /**
   * Hands admitted pushes to the bus in one call; rejects with the bus's error. Each published
   * push's outcome is its result, or the error a `requested` listener threw for it.
   */
  private async handOver(
    items: ReadonlyArray<{ request: PushRequest; identity: PushIdentity }>,
  ): Promise<PushOutcome[]> {
    const messages: PreparedMessage[] = [];
    for (const { request, identity } of items)
      for (const channel of request.channels)
        messages.push({
          channel,
          id: identity.id,
          ts: identity.ms,
          event: request.event,
          data: request.data,
          head: messageHead(channel, request.event, request.dataJson, identity.id, identity.ms),
        });
    const offsets = await this.bus.publish(messages);
    let at = 0;
    return items.map(({ request, identity }): PushOutcome => {
      const result: PushResult = {
        id: identity.id,
        channel: request.channels,
        event: request.event,
        data: request.data,
        ts: identity.ms,
        offsets: offsetsByChannel(
          request.channels,
          offsets.slice(at, (at += request.channels.length)),
        ),
      };
      try {
        for (const listener of this.requestedListeners) listener(result);
      } catch (error) {
        return { error };
      }
      return { result };
    });
  }

  /** Throws 503 when a push cannot be taken now (draining, full, bus down). */
  admit(): void {
    if (this.draining) throw unavailable('draining');
    if (this.inflight >= this.maxInflight)
      throw unavailable('overloaded', { details: { limit: this.maxInflight } });
    if (!this.bus.ready()) throw unavailable('bus');
  }

  /** Refuses new pushes from now on; resolves true when in-flight ones finish, false on timeout. */
  async drain(timeoutMs: number): Promise<boolean> {
    this.draining = true;
    if (this.inflight === 0) return true;
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.idleWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}

/** The offsets the bus gave, by channel (channels without history have none). */
function offsetsByChannel(
  channels: readonly string[],
  offsets: ReadonlyArray<string | undefined>,
): Record<string, string> {
  const entries: Array<[string, string]> = [];
  for (let i = 0; i < channels.length; i++) {
    const offset = offsets[i];
    if (offset !== undefined) entries.push([channels[i]!, offset]);
  }
  // fromEntries: a channel named like an Object.prototype member is still an own key.
  return Object.fromEntries(entries);
}
