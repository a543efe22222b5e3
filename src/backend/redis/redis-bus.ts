import type { Cluster, Redis } from 'ioredis';
import type { Bus, HistoryPage } from '../../delivery/bus.js';
import { messageJson, type ChannelMessage, type PreparedMessage } from '../../delivery/message.js';
import { roomOf } from '../../delivery/names.js';
import { formatOffset, newEpoch, parseOffset } from '../../delivery/offset.js';
import { unavailable } from '../../errors.js';
import { adapterChannelFor, cachedEnvelope } from './envelope.js';
import type { HistoryPolicy } from '../../delivery/history-policy.js';
import { InFlight } from './in-flight.js';
import { HISTORY_SCRIPT, POSITION_SCRIPT, PUBLISH_SCRIPT } from './scripts.js';
import { slotOfChannel } from './slots.js';
import { standaloneTopology, type Topology } from './topology.js';
import { withTimeout } from './timeout.js';

type PublishFn = (numKeys: number, ...keysAndArgs: Array<string | number>) => Promise<string[]>;
type HistoryFn = (
  meta: string,
  stream: string,
  since: string,
  limit: number,
) => Promise<[string, number, Array<[string, string[]]>, string]>;

/** The publish connection (one Redis or a Cluster) with the scripts defined on it. */
interface ScriptedRedis {
  status: string;
  time(): Promise<[string, string]>;
  pushcastPublish: PublishFn;
  pushcastHistory: HistoryFn;
  pushcastPosition: (meta: string, epoch: string, ttl: number) => Promise<[string, number]>;
}

/** What the Redis bus is built from. */
export interface RedisBusOptions {
  /** Told when the periodic clock re-measure fails (the last measure stays in use). */
  onClockError?: (err: unknown) => void;
  pub: Redis | Cluster;
  sub: Redis | Cluster;
  /** One Redis or a Cluster; one Redis when not given. */
  topology?: Topology;
  mode: 'sharded' | 'classic';
  keyPrefix: string;
  commandTimeoutMs: number;
  /** Whether the subscriber connection is up with every local room subscribed again. */
  subscriptionsLive: () => boolean;
  /**
   * Resolves once every message published to the room before the call has reached its local
   * listeners (AdapterWiring.settle: a round trip on the room's subscriber connection, then any gap
   * fill in progress).
   */
  settleRoom: (room: string) => Promise<void>;
  /** History per channel. The stream may hold more (MAXLEN ~): history is the last `size`. */
  history: HistoryPolicy;
}

/**
 * Ids a channel keeps to refuse a push it already holds (Redis Cluster), at most, within its
 * history TTL: a retry of a push that failed on another shard comes within seconds, or minutes.
 */
export const DEDUPE_KEEP = 10_000;

/**
 * The cluster bus on Redis: one Lua script per push appends to each channel's stream and
 * publishes the adapter message, so history order and live order agree on every node. On a
 * Redis Cluster, one script per hash slot of the push's channels (run side by side), each
 * channel refusing a push id it already holds, and, where the slot's master has replicas, the
 * answer waits until one replica has the writes (WAIT): a failover does not lose a push answered
 * 200.
 */
export class RedisBus implements Bus {
  private readonly pub: ScriptedRedis;
  private readonly sub: Redis | Cluster;
  private readonly topology: Topology;
  private readonly mode: 'sharded' | 'classic';
  private readonly keyPrefix: string;
  private readonly commandTimeoutMs: number;
  private readonly subscriptionsLive: () => boolean;
  private readonly settleRoom: (room: string) => Promise<void>;
  private readonly policy: HistoryPolicy;
  private readonly acks = new ReplicaAcks();
  /** Position reads in flight, by channel (see {@link position}). */
  private readonly positions = new InFlight<string, Promise<string | undefined>>();
  /** Redis clock minus this node's clock (ms), for publish deadlines. */
  private clockOffsetMs = 0;
  private clockTimer: NodeJS.Timeout | undefined;

  private readonly onClockError: ((err: unknown) => void) | undefined;

  constructor(options: RedisBusOptions) {
    const { pub } = options;
    this.onClockError = options.onClockError;
    this.sub = options.sub;
    this.topology = options.topology ?? standaloneTopology(pub as Redis, options.sub as Redis);
    this.mode = options.mode;
    this.keyPrefix = options.keyPrefix;
    this.commandTimeoutMs = options.commandTimeoutMs;
    this.subscriptionsLive = options.subscriptionsLive;
    this.settleRoom = options.settleRoom;
    this.policy = options.history;
    // defineCommand sends EVALSHA and falls back to EVAL when Redis lost the script (NOSCRIPT, as
    // on a replica just promoted).
    pub.defineCommand('pushcastPublish', { lua: PUBLISH_SCRIPT });
    pub.defineCommand('pushcastHistory', { numberOfKeys: 2, lua: HISTORY_SCRIPT });
    pub.defineCommand('pushcastPosition', { numberOfKeys: 1, lua: POSITION_SCRIPT });
    this.pub = pub as unknown as ScriptedRedis;
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

  /** One script on one Redis; one per hash slot on a Cluster, each succeeding on its own. */
  get allOrNothing(): boolean {
    return !this.topology.cluster;
  }

  async publish(messages: PreparedMessage[]): Promise<Array<string | undefined>> {
    if (!this.ready()) throw unavailable('bus');
    if (messages.length === 0) return [];
    const started = Date.now();
    // A little before the client-side timeout, so a reply in flight is not taken for a failure.
    const deadline = Math.floor(started + this.clockOffsetMs + this.commandTimeoutMs * 0.8);
    // Only used by a channel whose history starts with this push: one fresh epoch serves all.
    const epoch = newEpoch();
    const offsets: Array<string | undefined> = new Array<string | undefined>(messages.length);
    // One Redis: every channel in one script (all or nothing). A Cluster: one per slot.
    const groups = new Map<number, number[]>();
    messages.forEach((m, i) => {
      const slot = this.topology.cluster ? slotOfChannel(m.channel) : 0;
      const group = groups.get(slot);
      if (group) group.push(i);
      else groups.set(slot, [i]);
    });
    const results = await Promise.allSettled(
      [...groups].map(async ([slot, indices]) => {
        const replies = await this.publishGroup(
          indices.map((i) => messages[i]!),
          deadline,
          epoch,
          started,
        );
        indices.forEach((i, k) => {
          const o = replies[k];
          offsets[i] = o === undefined || o === '' || o === '=' ? undefined : o;
        });
        if (this.topology.cluster) await this.replicated(slot, started);
      }),
    );
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw unavailable('bus', { cause: failed.reason });
    return offsets;
  }

  /** One script for channels of one slot; resolves with its replies. */
  private async publishGroup(
    messages: PreparedMessage[],
    deadline: number,
    epoch: string,
    started: number,
  ): Promise<string[]> {
    const dedupe = this.topology.cluster;
    const keys: string[] = [];
    const args: Array<string | number> = [
      deadline,
      this.mode === 'sharded' ? 's' : 'p',
      dedupe ? '1' : '0',
      DEDUPE_KEEP,
    ];
    for (const m of messages) {
      const history = this.policy.for(m.channel);
      const room = roomOf(m.channel);
      const env = cachedEnvelope(this.mode, room);
      keys.push(this.key(m.channel, 'm'), this.key(m.channel, 's'));
      if (dedupe) keys.push(this.key(m.channel, 'i'));
      args.push(
        adapterChannelFor(room),
        m.head,
        history.size,
        history.ttlS,
        epoch,
        env.head,
        env.tail,
        m.id,
      );
    }
    // Bounded whatever the client does underneath (a Cluster retries a command a failover
    // redirected): the answer is 503 in time, and the script's deadline keeps a late run inert.
    return withTimeout(
      this.pub.pushcastPublish(keys.length, ...keys, ...args),
      started + this.commandTimeoutMs - Date.now(),
    );
  }

  /**
   * Waits until one replica of the slot's master has everything written so far on this node's
   * connection to it (none to wait for when the master has no replica).
   */
  private async replicated(slot: number, started: number): Promise<void> {
    if (this.topology.replicasOf(slot) === 0) return;
    const master = this.topology.masterOf(slot);
    if (!master) throw new Error('no connection to the master of the slot');
    const left = started + this.commandTimeoutMs - Date.now();
    const acked = await withTimeout(
      this.acks.wait(master, Math.max(10, left - 20)),
      Math.max(1, left),
    );
    if (acked < 1) throw new Error('no replica acknowledged the push in time');
  }

  async history(
    channel: string,
    options: { since?: string | undefined; limit: number },
  ): Promise<HistoryPage> {
    const since = options.since === undefined ? undefined : parseOffset(options.since);
    // A since this server never gave out: not honoured, but the top is still the channel's own.
    const malformed = options.since !== undefined && !since;
    // `MAXLEN ~` trims whole stream nodes, so the stream can hold more than the channel's
    // history size; history is the last `size` messages, in Redis as in memory.
    const { size } = this.policy.for(channel);
    // A `since` past every safe integer is past every position: only the position is read (it
    // answers `complete: false` below). Otherwise n goes to Lua as its decimal digits.
    const read = !malformed && (!since || Number.isSafeInteger(since.n));
    let reply: Awaited<ReturnType<HistoryFn>>;
    try {
      reply = await withTimeout(
        this.pub.pushcastHistory(
          this.key(channel, 'm'),
          this.key(channel, 's'),
          since && read ? String(since.n) : '-1',
          !read ? 0 : since ? options.limit : Math.min(options.limit, size),
        ),
        this.commandTimeoutMs,
      );
    } catch (err) {
      throw unavailable('bus', { cause: err });
    }
    const [epoch, topN, entries, oldestId] = reply;
    if (epoch === '')
      return { messages: [], top: undefined, complete: since === undefined && !malformed };
    const top = formatOffset(epoch, topN);
    if (malformed) return { messages: [], top, complete: false };
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

  /**
   * The channel's position (its history started if it had none). Reads of one channel in flight
   * at once share one script call: a join to a channel new on this node reads it twice at once
   * (the join's answer, and the gap tracker's baseline), a join storm on one channel many times.
   * Sharing is sound because every caller reads only once its room's subscription is active
   * (channel-session.ts, room-streams.ts): a read issued after that moment is as good for each of
   * them, and one cut short by a subscriber outage is covered by the recheck after it.
   */
  position(channel: string): Promise<string | undefined> {
    const history = this.policy.for(channel);
    if (history.size <= 0) return Promise.resolve(undefined);
    const read = this.positions.get(channel);
    if (read !== undefined) return read;
    const started = this.readPosition(channel, history.ttlS);
    return this.positions.keep(channel, started, started);
  }

  private async readPosition(channel: string, ttlS: number): Promise<string | undefined> {
    try {
      const [epoch, n] = await withTimeout(
        this.pub.pushcastPosition(this.key(channel, 'm'), newEpoch(), ttlS),
        this.commandTimeoutMs,
      );
      return formatOffset(epoch, n);
    } catch (err) {
      throw unavailable('bus', { cause: err });
    }
  }

  async settle(channel: string): Promise<void> {
    try {
      await this.settleRoom(roomOf(channel));
    } catch (err) {
      throw unavailable('bus', { cause: err });
    }
  }

  close(): Promise<void> {
    if (this.clockTimer) clearInterval(this.clockTimer);
    return Promise.resolve();
  }

  private key(channel: string, kind: 'm' | 's' | 'i'): string {
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

/**
 * WAIT with group commit, per master connection: WAIT blocks the connection it is sent on, so at
 * most one runs per connection, and callers that arrive while it runs share the next one (which
 * covers every write made before it was sent).
 */
class ReplicaAcks {
  private readonly lanes = new WeakMap<
    Redis,
    { running?: Promise<number>; next?: Promise<number> }
  >();

  wait(node: Redis, timeoutMs: number): Promise<number> {
    let lane = this.lanes.get(node);
    if (!lane) {
      lane = {};
      this.lanes.set(node, lane);
    }
    const current = lane;
    if (!current.running) return this.send(node, current, timeoutMs);
    current.next ??= current.running
      .then(
        () => undefined,
        () => undefined,
      )
      .then(() => {
        current.next = undefined;
        return this.send(node, current, timeoutMs);
      });
    return current.next;
  }

  private send(
    node: Redis,
    lane: { running?: Promise<number> },
    timeoutMs: number,
  ): Promise<number> {
    const sent = (
      node.call('WAIT', 1, Math.max(1, Math.floor(timeoutMs))) as Promise<number>
    ).finally(() => {
      if (lane.running === sent) lane.running = undefined;
    });
    lane.running = sent;
    return sent.then(Number);
  }
}
