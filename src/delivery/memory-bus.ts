import type { Bus, HistoryPage, LocalMessageListener } from './bus.js';
import type { HistoryPolicy } from './history-policy.js';
import type { ChannelMessage, PreparedMessage } from './message.js';
import { formatOffset, newEpoch, parseOffset } from './offset.js';
import { roomOf } from './names.js';

interface ChannelLog {
  epoch: string;
  seq: number;
  ring: ChannelMessage[];
  expiresAt: number;
}

/**
 * The single-node bus: history in an in-memory ring per channel, fan-out straight to this node's
 * sockets. Same semantics as the Redis bus (size, TTL, epochs), so one test suite serves both.
 */
export class MemoryBus implements Bus {
  private readonly logs = new Map<string, ChannelLog>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly deliver: LocalMessageListener,
    private readonly policy: HistoryPolicy,
    private readonly now: () => number = Date.now,
  ) {
    // Expired channels would otherwise stay in memory until their next publish.
    this.sweeper = setInterval(() => this.sweep(), 10_000);
    this.sweeper.unref();
  }

  ready(): boolean {
    return true;
  }

  publish(messages: PreparedMessage[]): Promise<Array<string | undefined>> {
    return Promise.resolve(messages.map((m) => this.publishOne(m)));
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
      log.ring.push(message);
      if (log.ring.length > history.size) log.ring.splice(0, log.ring.length - history.size);
      log.expiresAt = this.now() + history.ttlS * 1000;
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
      this.logs.delete(channel);
      return undefined;
    }
    return log;
  }

  private create(channel: string): ChannelLog {
    const log: ChannelLog = { epoch: newEpoch(), seq: 0, ring: [], expiresAt: 0 };
    this.logs.set(channel, log);
    return log;
  }

  private sweep(): void {
    const now = this.now();
    for (const [channel, log] of this.logs) if (log.expiresAt <= now) this.logs.delete(channel);
  }
}
