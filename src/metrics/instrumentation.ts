import type { Logger } from 'pino';
import type { Hooks, PushInfo } from '../auth/hooks.js';
import type { ChannelMessage } from '../delivery/message.js';
import type { PushResult } from '../delivery/pipeline.js';
import type { PushMetrics } from './metrics.js';

/**
 * The instrumentation events of a node (PushEx's model): a push is *requested* once when the API
 * accepts it and *delivered* once per socket it is written to. Each event feeds the metrics and
 * the hooks module's listener of the same name. Listeners run after the current work (never on
 * the hot path), see the PushInfo built once per event, and can neither break nor hold up what
 * they observe: a throw, or an async listener's rejection, is logged and goes no further.
 */
export class Instrumentation {
  constructor(
    private readonly hooks: Hooks,
    private readonly metrics: PushMetrics,
    private readonly log: Logger,
    private readonly node: string,
  ) {}

  /** A push was accepted by the API (or the embedding `push()`). */
  requested(result: PushResult): void {
    this.metrics.pushRequested();
    if (!this.hooks.requested) return;
    const push: PushInfo = {
      id: result.id,
      channels: result.channel,
      event: result.event,
      ts: result.ts,
    };
    setImmediate(() => this.call(() => this.hooks.requested?.(push, { node: this.node })));
  }

  /** A message was written to `count` of this node's sockets. */
  delivered(message: ChannelMessage, count: number): void {
    this.metrics.pushDelivered(count, message.ts);
    if (!this.hooks.delivered || count === 0) return;
    const push: PushInfo = {
      id: message.id,
      channels: [message.channel],
      event: message.event,
      ts: message.ts,
    };
    const ctx = { node: this.node, channel: message.channel, count };
    setImmediate(() => this.call(() => this.hooks.delivered?.(push, ctx)));
  }

  /** An API request arrived. */
  apiRequested(ctx: Parameters<NonNullable<Hooks['apiRequested']>>[0]): void {
    if (this.hooks.apiRequested) this.call(() => this.hooks.apiRequested?.(ctx));
  }

  /** An API request was answered. */
  apiProcessed(ctx: Parameters<NonNullable<Hooks['apiProcessed']>>[0]): void {
    if (this.hooks.apiProcessed) this.call(() => this.hooks.apiProcessed?.(ctx));
  }

  private call(fn: () => unknown): void {
    callListener(this.log, fn);
  }
}

/**
 * Runs an instrumentation listener so that it can neither break nor hold up what it observes: a
 * throw, or the rejection of an async listener, is logged and goes no further.
 */
export function callListener(log: Logger, fn: () => unknown): void {
  try {
    const result = fn();
    // An async listener's rejection would otherwise be unhandled, which ends the process.
    if (result instanceof Promise)
      result.catch((err: unknown) => log.warn({ err }, 'instrumentation hook threw'));
  } catch (err) {
    log.warn({ err }, 'instrumentation hook threw');
  }
}
