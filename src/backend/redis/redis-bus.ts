import type { Redis } from 'ioredis';
import type { Bus, HistoryPage } from '../../delivery/bus.js';
import { messageJson, type ChannelMessage, type PreparedMessage } from '../../delivery/message.js';
import { roomOf } from '../../delivery/names.js';
import { formatOffset, newEpoch, parseOffset } from '../../delivery/offset.js';
import { unavailable } from '../../errors.js';
import { adapterChannelFor, envelopeFor } from './envelope.js';
import type { HistoryPolicy } from '../../delivery/history-policy.js';
import { HISTORY_SCRIPT, POSITION_SCRIPT, PUBLISH_SCRIPT } from './scripts.js';

type PublishFn = (numKeys: number, ...keysAndArgs: Array<string | number>) => Promise<string[]>;
type HistoryFn = (
  meta: string,
  stream: string,
  since: string,
  limit: number,
) => Promise<[string, number, Array<[string, string[]]>, string]>;

interface ScriptedRedis extends Redis {
  pushcastPublish: PublishFn;
  pushcastHistory: HistoryFn;
  pushcastPosition: (meta: string, epoch: string, ttl: number) => Promise<[string, number]>;
}

/** What the Redis bus is built from. */
export interface RedisBusOptions {
  /** Told when the periodic clock re-measure fails (the last measure stays in use). */
  onClockError?: (err: unknown) => void;
  pub: Redis;
  sub: Redis;
  mode: 'sharded' | 'classic';
  keyPrefix: string;
  commandTimeoutMs: number;
  /** Whether the subscriber connection is up with every local room subscribed again. */
  subscriptionsLive: () => boolean;
  /** History per channel. The stream may hold more (MAXLEN ~): history is the last `size`. */
  history: HistoryPolicy;
}

/**
 * The cluster bus on Redis: one Lua script per push appends to each channel's stream and
 * publishes the adapter message, so history order and live order agree on every node.
 */
export class RedisBus implements Bus {
  private readonly pub: ScriptedRedis;
  private readonly sub: Redis;
  private readonly mode: 'sharded' | 'classic';
  private readonly keyPrefix: string;
  private readonly commandTimeoutMs: number;
  private readonly subscriptionsLive: () => boolean;
  private readonly policy: HistoryPolicy;
  private readonly envelopes = new Map<string, { head: string; tail: string }>();
  /** Redis clock minus this node's clock (ms), for publish deadlines. */
  private clockOffsetMs = 0;
  private clockTimer: NodeJS.Timeout | undefined;

  private readonly onClockError: ((err: unknown) => void) | undefined;

  constructor(options: RedisBusOptions) {
    const { pub } = options;
    this.onClockError = options.onClockError;
    this.sub = options.sub;
    this.mode = options.mode;
    this.keyPrefix = options.keyPrefix;
    this.commandTimeoutMs = options.commandTimeoutMs;
    this.subscriptionsLive = options.subscriptionsLive;
    this.policy = options.history;
    // defineCommand sends EVALSHA and falls back to EVAL when Redis lost the script (NOSCRIPT).
    pub.defineCommand('pushcastPublish', { lua: PUBLISH_SCRIPT });
    pub.defineCommand('pushcastHistory', { numberOfKeys: 2, lua: HISTORY_SCRIPT });
    pub.defineCommand('pushcastPosition', { numberOfKeys: 1, lua: POSITION_SCRIPT });
    this.pub = pub as ScriptedRedis;
  }

  ready(): boolean {
    // Both directions: a push answered 200 while this node's subscriptions are not back yet
    // would never reach the sockets already joined here.
    return this.pub.status === 'ready' && this.sub.status === 'ready' && this.subscriptionsLive();
  }

  /** Measures the Redis clock against this node's (and again every minute). */
  async syncClock(): Promise<void> {
    const measure = async (): Promise<void> => {
      const before = Date.now();
      const [s, us] = await this.pub.time();
      const after = Date.now();
      this.clockOffsetMs = Number(s) * 1000 + Math.floor(Number(us) / 1000) - (before + after) / 2;
    };
    await measure();
    // A failed re-measure keeps the last offset (Redis away: publishes fail anyway); said once.
    this.clockTimer ??= setInterval(
      () => void measure().catch((err: unknown) => this.onClockError?.(err)),
      60_000,
    );
    this.clockTimer.unref();
  }

  async publish(messages: PreparedMessage[]): Promise<Array<string | undefined>> {
    if (!this.ready()) throw unavailable('bus');
    const keys: string[] = [];
    // A little before the client-side timeout, so a reply in flight is not taken for a failure.
    const deadline = Math.floor(Date.now() + this.clockOffsetMs + this.commandTimeoutMs * 0.8);
    const args: Array<string | number> = [deadline, this.mode === 'sharded' ? 's' : 'p'];
    // Only used by a channel whose history starts with this push: one fresh epoch serves all.
    const epoch = newEpoch();
    for (const m of messages) {
      const history = this.policy.for(m.channel);
      const room = roomOf(m.channel);
      const env = this.envelope(room);
      keys.push(this.key(m.channel, 'm'), this.key(m.channel, 's'));
      args.push(
        adapterChannelFor(room),
        m.head,
        history.size,
        history.ttlS,
        epoch,
        env.head,
        env.tail,
      );
    }
    try {
      const offsets = await this.pub.pushcastPublish(keys.length, ...keys, ...args);
      return offsets.map((o) => (o === '' ? undefined : o));
    } catch (err) {
      throw unavailable('bus', { cause: err });
    }
  }

  async history(
    channel: string,
    options: { since?: string | undefined; limit: number },
  ): Promise<HistoryPage> {
    const since = options.since === undefined ? undefined : parseOffset(options.since);
    if (options.since !== undefined && !since)
      return { messages: [], top: undefined, complete: false };
    // `MAXLEN ~` trims whole stream nodes, so the stream can hold more than the channel's
    // history size; history is the last `size` messages, in Redis as in memory.
    const { size } = this.policy.for(channel);
    // A `since` past every safe integer is past every position: only the position is read (it
    // answers `complete: false` below). Otherwise n goes to Lua as its decimal digits.
    const read = !since || Number.isSafeInteger(since.n);
    let reply: Awaited<ReturnType<HistoryFn>>;
    try {
      reply = await this.pub.pushcastHistory(
        this.key(channel, 'm'),
        this.key(channel, 's'),
        since && read ? String(since.n) : '-1',
        !read ? 0 : since ? options.limit : Math.min(options.limit, size),
      );
    } catch (err) {
      throw unavailable('bus', { cause: err });
    }
    const [epoch, topN, entries, oldestId] = reply;
    if (epoch === '') return { messages: [], top: undefined, complete: since === undefined };
    const top = formatOffset(epoch, topN);
    const messages = entries.map(([id, fields]) => toMessage(epoch, id, fields));
    if (!since) return { messages: messages.reverse(), top, complete: true };
    if (since.epoch !== epoch || since.n > topN) return { messages: [], top, complete: false };
    if (since.n === topN) return { messages: [], top, complete: true };
    if (since.n < topN - size) return { messages: [], top, complete: false };
    // Complete only if the entry right after `since` is still there (not trimmed, not expired).
    const oldest = oldestId === '' ? Infinity : Number(oldestId.split('-')[0]);
    return oldest <= since.n + 1
      ? { messages, top, complete: true }
      : { messages: [], top, complete: false };
  }

  async position(channel: string): Promise<string | undefined> {
    const history = this.policy.for(channel);
    if (history.size <= 0) return undefined;
    try {
      const [epoch, n] = await this.pub.pushcastPosition(
        this.key(channel, 'm'),
        newEpoch(),
        history.ttlS,
      );
      return formatOffset(epoch, n);
    } catch (err) {
      throw unavailable('bus', { cause: err });
    }
  }

  async settle(): Promise<void> {
    // Not connected: nothing can be proven, and a PING would wait in the offline queue for the
    // whole outage.
    if (this.sub.status !== 'ready') throw unavailable('bus');
    // A round trip on the subscriber connection: replies come in order, so every message Redis
    // published to this node before the PING was answered has been received when it resolves.
    await this.sub.ping();
  }

  close(): Promise<void> {
    if (this.clockTimer) clearInterval(this.clockTimer);
    return Promise.resolve();
  }

  private envelope(room: string): { head: string; tail: string } {
    let env = this.envelopes.get(room);
    if (!env) {
      env = envelopeFor(this.mode, room);
      // Bounded: a cache, not a registry of every channel ever pushed to.
      if (this.envelopes.size >= 10_000) this.envelopes.clear();
      this.envelopes.set(room, env);
    }
    return env;
  }

  private key(channel: string, kind: 'm' | 's'): string {
    // `{channel}` is the hash tag shared with the room's shard channel (see roomOf).
    return `${this.keyPrefix}:{${channel}}:${kind}`;
  }
}

function toMessage(epoch: string, id: string, fields: string[]): ChannelMessage {
  const head = fields[1] ?? '';
  return JSON.parse(
    messageJson(head, formatOffset(epoch, Number(id.split('-')[0]))),
  ) as ChannelMessage;
}
