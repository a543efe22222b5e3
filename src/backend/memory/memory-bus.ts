import type { Bus, HistoryPage, LocalMessageListener } from '../../delivery/bus.js';
import type { HistoryPolicy } from '../../delivery/history-policy.js';
import type { ChannelMessage, PreparedMessage } from '../../delivery/message.js';
import { formatOffset, newEpoch, parseOffset } from '../../delivery/offset.js';
import { roomOf } from '../../delivery/names.js';

interface ChannelLog {
  epoch: string;
  seq: number;
  ring: ChannelMessage[];
  /** Approximate bytes of each message in `ring`, in the same order. */
  sizes: number[];
  bytes: number;
  expiresAt: number;
}

// What a stored message costs beyond its JSON: the object, its strings' headers, the ring slot.
const MESSAGE_OVERHEAD_BYTES = 120;

/**
 * The single-node bus: history in an in-memory ring per channel, fan-out straight to this node's
 * sockets. Same semantics as the Redis bus (size, TTL, epochs), so one test suite serves both.
 * All history together is bounded by `maxBytes`: past it, the channels pushed to least recently
 * are dropped whole (their clients then recover with `recovered: false`, as after a TTL).
 */
export class MemoryBus implements Bus {
  /** Ordered by last push, least recent first: the eviction order. */
  private readonly logs = new Map<string, ChannelLog>();
  /** The channel last in {@link logs} (the most recently pushed), when known. */
  private newest: string | undefined;
  private readonly sweeper: NodeJS.Timeout;
  private bytes = 0;

  constructor(
    private readonly deliver: LocalMessageListener,
    private readonly policy: HistoryPolicy,
    private readonly options: { maxBytes: number; now?: () => number } = {
      maxBytes: Number.POSITIVE_INFINITY,
    },
  ) {
    // Expired channels would otherwise stay in memory until their next publish.
    this.sweeper = setInterval(() => this.sweep(), 10_000);
    this.sweeper.unref();
  }

  ready(): boolean {
    return true;
  }

  /** Publishing to memory does not fail. */
  get allOrNothing(): boolean {
    return true;
  }

  publish(messages: PreparedMessage[]): Promise<Array<string | undefined>> {
    return Promise.resolve(messages.map((m) => this.publishOne(m)));
  }

  /** Approximate bytes all channels' history holds (for tests and metrics). */
  get historyBytes(): number {
    return this.bytes;
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  private publishOne(m: PreparedMessage): string | undefined {
    const message: ChannelMessage = {
      channel: m.channel,
      event: m.event,
      data: m.data,
      id: m.id,
      ts: m.ts,
    };
    const history = this.policy.for(m.channel);
    if (history.size > 0) {
      const log = this.live(m.channel) ?? this.create(m.channel);
      log.seq += 1;
      message.offset = formatOffset(log.epoch, log.seq);
      const size = m.head.length + MESSAGE_OVERHEAD_BYTES;
      log.ring.push(message);
      log.sizes.push(size);
      log.bytes += size;
      this.bytes += size;
      while (log.ring.length > history.size) {
        log.ring.shift();
        const dropped = log.sizes.shift() ?? 0;
        log.bytes -= dropped;
        this.bytes -= dropped;
      }
      log.expiresAt = this.now() + history.ttlS * 1000;
      // Most recently pushed last: re-inserted so the map's order is the eviction order. Not when
      // it is last already: a delete and set per push of the same channel makes the map shrink
      // and grow its table again and again (the hottest line of a batch to one channel).
      if (this.newest !== m.channel) {
        this.logs.delete(m.channel);
        this.logs.set(m.channel, log);
        this.newest = m.channel;
      }
      this.evict(m.channel);
    }
    this.deliver(roomOf(m.channel), message);
    return message.offset;
  }

  history(
    channel: string,
    options: { since?: string | undefined; limit: number },
  ): Promise<HistoryPage> {
    const log = this.live(channel);
    if (!log)
      return Promise.resolve({
        messages: [],
        top: undefined,
        complete: options.since === undefined,
      });
    const top = formatOffset(log.epoch, log.seq);
    if (options.since === undefined) {
      const messages = options.limit > 0 ? log.ring.slice(-options.limit) : [];
      return Promise.resolve({ messages, top, complete: true });
    }
    const since = parseOffset(options.since);
    if (!since || since.epoch !== log.epoch || since.n > log.seq) {
      return Promise.resolve({ messages: [], top, complete: false });
    }
    const first = log.ring.length > 0 ? log.seq - log.ring.length + 1 : log.seq + 1;
    if (since.n + 1 < first) return Promise.resolve({ messages: [], top, complete: false });
    const start = since.n + 1 - first;
    return Promise.resolve({
      messages: log.ring.slice(start, start + options.limit),
      top,
      complete: true,
    });
  }

  position(channel: string): Promise<string | undefined> {
    const history = this.policy.for(channel);
    if (history.size <= 0) return Promise.resolve(undefined);
    let log = this.live(channel);
    if (!log) {
      log = this.create(channel);
      log.expiresAt = this.now() + history.ttlS * 1000;
    }
    return Promise.resolve(formatOffset(log.epoch, log.seq));
  }

  settle(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    clearInterval(this.sweeper);
    return Promise.resolve();
  }

  private live(channel: string): ChannelLog | undefined {
    const log = this.logs.get(channel);
    if (log && log.expiresAt <= this.now()) {
      this.drop(channel, log);
      return undefined;
    }
    return log;
  }

  private create(channel: string): ChannelLog {
    const log: ChannelLog = {
      epoch: newEpoch(),
      seq: 0,
      ring: [],
      sizes: [],
      bytes: 0,
      expiresAt: 0,
    };
    this.logs.set(channel, log);
    this.newest = channel;
    return log;
  }

  /** Drops the least recently pushed channels (never `keep`) until history fits its bound. */
  private evict(keep: string): void {
    for (const [channel, log] of this.logs) {
      if (this.bytes <= this.options.maxBytes) return;
      if (channel !== keep) this.drop(channel, log);
    }
  }

  private drop(channel: string, log: ChannelLog): void {
    this.logs.delete(channel);
    if (this.newest === channel) this.newest = undefined;
    this.bytes -= log.bytes;
  }

  private sweep(): void {
    const now = this.now();
    for (const [channel, log] of this.logs) if (log.expiresAt <= now) this.drop(channel, log);
  }
}
