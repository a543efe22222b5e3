import { unavailable } from '../errors.js';
import type { Bus } from './bus.js';
import { messageHead } from './message.js';
import type { PushIdGenerator } from './push-id.js';

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
    this.admit();
    this.inflight += 1;
    try {
      const { id, ms } = identity ?? this.ids.next();
      const offsets = await this.bus.publish(
        request.channels.map((channel) => ({
          channel,
          id,
          ts: ms,
          event: request.event,
          data: request.data,
          head: messageHead(channel, request.event, request.dataJson, id, ms),
        })),
      );
      const result: PushResult = {
        id,
        channel: request.channels,
        event: request.event,
        data: request.data,
        ts: ms,
        offsets: offsetsByChannel(request.channels, offsets),
      };
      for (const listener of this.requestedListeners) listener(result);
      return result;
    } finally {
      this.inflight -= 1;
      if (this.inflight === 0) this.wakeIdle();
    }
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
