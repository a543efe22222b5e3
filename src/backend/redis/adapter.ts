import { createAdapter, createShardedAdapter } from '@socket.io/redis-adapter';
import type { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Server } from 'socket.io';
import type { Bus } from '../../delivery/bus.js';
import type { HistoryPolicy } from '../../delivery/history-policy.js';
import { messageJson, type ChannelMessage } from '../../delivery/message.js';
import { channelOfRoom } from '../../delivery/names.js';
import { adapterChannelFor, cachedEnvelope, offsetOfRaw } from './envelope.js';
import { InFlight } from './in-flight.js';
import { RoomStreams } from './room-streams.js';
import { RoundTrips } from './round-trips.js';
import { slotOf } from './slots.js';
import type { ClusterTopology, Topology } from './topology.js';
import { withTimeout } from './timeout.js';

/** Installs the Redis adapter on the server and owns its subscriptions. */
export interface AdapterWiring {
  /**
   * Resolves once this node's subscription for the room is active in Redis; rejects at once while
   * the subscriber is not connected (the room is subscribed again, with every other local room,
   * when it is back). With Redis paused it waits: callers bound it (realtime/channel-session.ts).
   */
  ensureSubscribed(room: string): Promise<void>;
  /** False from a subscriber disconnect until every local room is subscribed again. */
  live(): boolean;
  /**
   * Resolves once every message published to the room before the call has reached the room's
   * listeners on this node (a round trip on its subscriber connection, then any gap fill in
   * progress); rejects when that cannot be proven.
   */
  settle(room: string): Promise<void>;
  close(): void;
}

/** What the wiring needs besides the connections. */
export interface AdapterOptions {
  mode: 'sharded' | 'classic';
  topology: Topology;
  log: Logger;
  commandTimeoutMs: number;
  history: HistoryPolicy;
  /** The bus (history and position reads fill gaps); read when first needed. */
  bus: () => Pick<Bus, 'history' | 'position'>;
  /** Closes the room's connections that are not the adapter's sockets; returns how many. */
  rejoinOthers?: (room: string) => number;
}

/** The one pattern the classic adapter subscribes to (its key prefix and the `/` namespace). */
const CLASSIC_PATTERN = 'socket.io#/#*';
/** Where the adapter's room channels start (its key prefix and the `/` namespace). */
const ROOM_CHANNEL_PREFIX = 'socket.io#/#';
/** A room's subscription answered by Redis on the connection that is up now (one Redis). */
const CONFIRMED = Object.freeze({});
/** While the subscriptions are not all back, how often they are tried again (cluster). */
const RESUBSCRIBE_RETRY_MS = 250;

/** The classic adapter gets a JSON parser so the publish script can write its messages in Lua. */
const jsonParser = {
  encode: (value: unknown): string => JSON.stringify(value),
  decode: (raw: Buffer | string): unknown => JSON.parse(raw.toString()) as unknown,
};

/** The parts of the adapters hooked here (public fields, private in their typings). */
interface ShardedAdapterParts {
  channel: string;
  responseChannel: string;
  onRawMessage(raw: Buffer, channel: Buffer | string): void;
  serverCount(): Promise<number>;
}
type PatternListener = (pattern: Buffer, channel: Buffer, raw: Buffer) => void;
interface ClassicAdapterParts {
  redisListeners: Map<string, PatternListener>;
}

/**
 * Wires `@socket.io/redis-adapter` (sharded: Redis 7 sharded pub/sub with one shard channel per
 * room, subscribed while the room has local members; or classic pub/sub) onto the server, on one
 * Redis or a Redis Cluster (sharded only), and puts a {@link RoomStreams} between the subscriber
 * and the rooms, so a message missed live (subscription down, failover) is filled from history.
 */
export async function installRedisAdapter(
  io: Server,
  clients: { pub: Redis | Cluster; sub: Redis | Cluster },
  options: AdapterOptions,
): Promise<AdapterWiring> {
  const { pub, sub } = clients;
  const { mode, topology, log } = options;
  const trips = new RoundTrips();
  // The adapter's SSUBSCRIBE of each room it creates, while unanswered (one Redis, see
  // standaloneSubscriptions).
  const adapterSubscribes = new InFlight<string, Promise<unknown>>();
  if (mode === 'sharded') {
    const adapterSub = topology.cluster
      ? sub
      : recordingSubscribes(sub as Redis, adapterSubscribes);
    io.adapter(createShardedAdapter(pub, adapterSub, { subscriptionMode: 'dynamic' }));
  } else {
    io.adapter(createAdapter(pub, sub, { parser: jsonParser }));
    // The classic adapter listens with one pattern; make sure it is active before serving.
    await (sub as Redis).psubscribe(CLASSIC_PATTERN);
  }
  const nsp = io.of('/');
  const adapter = nsp.adapter;

  // Hands a raw adapter message of a room to the adapter as if it had just arrived.
  let handle: (room: string, raw: Buffer) => void;
  const streams = new RoomStreams({
    history: (channel, o) => options.bus().history(channel, o),
    position: (channel) => options.bus().position(channel),
    roundTrip: async (room) => {
      const connection = topology.subscriberFor(adapterChannelFor(room));
      if (!connection) throw new Error('redis subscriber not connected');
      await trips.after(connection);
    },
    deliver: (room, message: ChannelMessage) => {
      const env = cachedEnvelope(mode, room);
      const { offset, ...rest } = message;
      const json = messageJson(JSON.stringify(rest).slice(0, -1), offset);
      handle(room, Buffer.from(env.head + json + env.tail));
    },
    rejoin: (room) => {
      let closed = options.rejoinOthers?.(room) ?? 0;
      for (const id of adapter.rooms.get(room) ?? []) {
        const socket = nsp.sockets.get(id);
        if (!socket) continue;
        // A transport close, as after a network drop: clients reconnect and rejoin with since.
        socket.conn.close();
        closed += 1;
      }
      return closed;
    },
    tracked: (channel) => options.history.for(channel).size > 0,
    log,
    fillTimeoutMs: Math.max(2000, 2 * options.commandTimeoutMs),
  });

  /** A raw message on a room channel: through the gap check, then to the adapter. */
  const intercept = (raw: Buffer, channel: Buffer | string, pass: () => void): void => {
    const name = channel.toString();
    const room = name.startsWith(ROOM_CHANNEL_PREFIX)
      ? name.slice(ROOM_CHANNEL_PREFIX.length, -1)
      : '';
    // Not a channel's room, or no local member (the adapter drops it): nothing to track.
    if (channelOfRoom(room) === undefined || !adapter.rooms.has(room)) return pass();
    streams.incoming(room, offsetOfRaw(raw, mode, room), pass);
  };
  if (mode === 'sharded') {
    const parts = adapter as unknown as ShardedAdapterParts;
    const onRaw = parts.onRawMessage.bind(adapter);
    parts.onRawMessage = (raw, channel) => intercept(raw, channel, () => onRaw(raw, channel));
    handle = (room, raw) => onRaw(raw, Buffer.from(adapterChannelFor(room)));
  } else {
    const parts = adapter as unknown as ClassicAdapterParts;
    const listener = parts.redisListeners.get('pmessageBuffer');
    if (!listener) throw new Error('the classic Redis adapter has no pmessageBuffer listener');
    const wrapped: PatternListener = (pattern, channel, raw) =>
      intercept(raw, channel, () => listener(pattern, channel, raw));
    sub.off('pmessageBuffer', listener);
    sub.on('pmessageBuffer', wrapped);
    // The adapter's close() removes what this map holds.
    parts.redisListeners.set('pmessageBuffer', wrapped);
    const pattern = Buffer.from(CLASSIC_PATTERN);
    handle = (room, raw) => listener(pattern, Buffer.from(adapterChannelFor(room)), raw);
  }

  const localRooms = (): string[] =>
    [...adapter.rooms.keys()].filter((room) => channelOfRoom(room) !== undefined);

  const subscriptions = topology.cluster
    ? await clusterSubscriptions(sub as Cluster, adapter as unknown as ShardedAdapterParts, {
        topology: topology as ClusterTopology,
        log,
        commandTimeoutMs: options.commandTimeoutMs,
        localRooms,
        streams,
      })
    : standaloneSubscriptions(sub as Redis, mode, {
        log,
        localRooms,
        streams,
        trips,
        adapterSubscribes,
      });
  adapter.on('delete-room', (room: string) => {
    streams.forget(room);
    subscriptions.forget(room);
  });

  return {
    live: () => subscriptions.live(),
    async ensureSubscribed(room) {
      await subscriptions.subscribe(room);
      streams.track(room);
    },
    async settle(room) {
      const connection = topology.subscriberFor(adapterChannelFor(room));
      // Not connected: nothing can be proven, and a PING would wait in the offline queue for the
      // whole outage.
      if (!connection) throw new Error('redis subscriber not connected');
      // A round trip on the subscriber connection: replies come in order, so every message Redis
      // published to this node before the PING was answered has been received when it resolves.
      await trips.after(connection);
      await streams.idle(room);
    },
    close: () => subscriptions.close(),
  };
}

/**
 * The subscriber connection as the sharded adapter sees it: each SSUBSCRIBE the adapter sends (a
 * room created on this node) is kept in `inFlight` by channel until Redis answers it, so that the
 * join that created the room waits for that answer instead of sending an SSUBSCRIBE of its own
 * (one command per new room, not two).
 */
function recordingSubscribes(sub: Redis, inFlight: InFlight<string, Promise<unknown>>): Redis {
  const ssubscribe = (...channels: string[]): Promise<unknown> => {
    const answer = sub.ssubscribe(...channels);
    return channels.length === 1 ? inFlight.keep(channels[0]!, answer, answer) : answer;
  };
  return new Proxy(sub, {
    get: (target, prop, receiver) =>
      prop === 'ssubscribe' ? ssubscribe : (Reflect.get(target, prop, receiver) as unknown),
  });
}

interface Subscriptions {
  live(): boolean;
  subscribe(room: string): Promise<void>;
  /** The room has no local member left. */
  forget(room: string): void;
  close(): void;
}

/** One Redis: one subscriber connection; every local room subscribed again when it is back. */
function standaloneSubscriptions(
  sub: Redis,
  mode: 'sharded' | 'classic',
  deps: {
    log: Logger;
    localRooms: () => string[];
    streams: RoomStreams;
    trips: RoundTrips;
    /** The adapter's SSUBSCRIBEs not answered yet, by channel (see recordingSubscribes). */
    adapterSubscribes: InFlight<string, Promise<unknown>>;
  },
): Subscriptions {
  const { log, localRooms, streams, trips, adapterSubscribes } = deps;
  // Redis came back after an outage: a room whose SSUBSCRIBE was sent (and failed) while it was
  // down is not in ioredis' resubscribe set, so subscribe every local room again. Idempotent.
  // Registered after the first `ready` (connectRedis waits for it): every `ready` here is a reconnect.
  let live = true;
  // Each local room's subscription on the connection that is up now: CONFIRMED once Redis answered
  // for it (a join then needs no round trip: a join storm on a few busy channels sent one
  // SSUBSCRIBE per join), or the token of the proof under way. A closed connection and the room's
  // emptying (the adapter unsubscribes it) drop the entry: an answer that comes after either
  // confirms nothing for the room's next life on this node.
  const subscribed = new Map<string, object>();
  const onClose = (): void => {
    live = false;
    subscribed.clear();
    streams.interrupted();
  };
  const onReady = (): void => {
    const rooms = localRooms();
    // Commands on one connection complete in order: once these resolve, ioredis' own
    // resubscriptions (sent first) are active too. Classic mode: its one pattern.
    const again =
      mode === 'sharded'
        ? rooms.map((room) => sub.ssubscribe(adapterChannelFor(room)))
        : [sub.psubscribe(CLASSIC_PATTERN)];
    Promise.all(again).then(
      () => {
        if (sub.status !== 'ready') return;
        live = true;
        log.info({ rooms: rooms.length }, 'redis subscriber reconnected; rooms resubscribed');
        // What was published while the connection was down never arrives: from history.
        void streams.recheck(rooms);
      },
      (err: Error) =>
        log.warn({ err: err.message }, 'resubscribe failed; retried on the next reconnect'),
    );
  };
  sub.on('close', onClose);
  sub.on('ready', onReady);
  return {
    live: () => live,
    async subscribe(room) {
      // Not connected: an SSUBSCRIBE would wait in the offline queue for the whole outage, and
      // proves nothing the reconnect above does not redo.
      if (sub.status !== 'ready') throw new Error('redis subscriber not connected');
      const known = subscribed.get(room);
      if (known === CONFIRMED) return;
      const proof = known ?? {};
      subscribed.set(room, proof);
      if (mode === 'sharded') {
        // A join of a room new to this node: the adapter has just sent the room's SSUBSCRIBE
        // (when the room was created); its answer proves the subscription as well as a second
        // one would.
        const channel = adapterChannelFor(room);
        await (adapterSubscribes.get(channel) ?? sub.ssubscribe(channel));
      } else await trips.after(sub);
      // Emptied, or the connection closed, meanwhile: this answer proves nothing now.
      if (subscribed.get(room) !== proof) return;
      // Not while the rooms are being subscribed again after a reconnect: that proves them.
      if (live) subscribed.set(room, CONFIRMED);
      else subscribed.delete(room);
    },
    forget: (room) => void subscribed.delete(room),
    close() {
      sub.off('close', onClose);
      sub.off('ready', onReady);
    },
  };
}

/**
 * A Redis Cluster: one sharded subscriber connection per master, owned by ioredis, which moves a
 * slot's channels to its new master after a failover or a migration. This node is live only once
 * every local room (and the adapter's request and response channels) is proven subscribed on the
 * connection that now serves its slot: after any subscriber connection ends, or a slot moves, the
 * node reports not ready, tries every subscription again (on ioredis' `subscribersReady`, and
 * every 250 ms until it holds), then checks the rooms whose connection changed against history.
 */
async function clusterSubscriptions(
  sub: Cluster,
  adapter: ShardedAdapterParts,
  deps: {
    topology: ClusterTopology;
    log: Logger;
    commandTimeoutMs: number;
    localRooms: () => string[];
    streams: RoomStreams;
  },
): Promise<Subscriptions> {
  const { topology, log, commandTimeoutMs, localRooms, streams } = deps;
  let live = false;
  let closed = false;
  let generation = 0;
  let running: Promise<void> | undefined;
  let retry: NodeJS.Timeout | undefined;
  /** The connection each room was last proven subscribed on. */
  const provenOn = new Map<string, Redis>();
  /** Each room's SSUBSCRIBE not answered yet, and the connection it went out on. */
  const subscribing = new InFlight<string, { on: Redis; answer: Promise<unknown> }>();

  /** Subscribes every channel again on the connection serving its slot now; true if all hold. */
  const resubscribe = async (): Promise<boolean> => {
    const started = generation;
    const rooms = localRooms();
    const bySlot = new Map<number, string[]>();
    for (const channel of [
      adapter.channel,
      adapter.responseChannel,
      ...rooms.map((room) => adapterChannelFor(room)),
    ]) {
      const slot = slotOf(channel);
      const group = bySlot.get(slot);
      if (group) group.push(channel);
      else bySlot.set(slot, [channel]);
    }
    const changed: string[] = [];
    try {
      await withTimeout(
        Promise.all(
          [...bySlot.values()].map(async (channels) => {
            const connection = topology.subscriberFor(channels[0]!);
            if (!connection) throw new Error('no subscriber connection for a slot');
            await connection.ssubscribe(...channels);
            for (const channel of channels) {
              const room = channel.slice(ROOM_CHANNEL_PREFIX.length, -1);
              if (channelOfRoom(room) === undefined) continue;
              if (provenOn.get(room) !== connection) changed.push(room);
              provenOn.set(room, connection);
            }
          }),
        ),
        commandTimeoutMs,
      );
    } catch (err) {
      log.debug({ err }, 'cluster resubscribe incomplete; trying again');
      return false;
    }
    // Something went down while this ran: not proven.
    if (started !== generation || closed) return false;
    if (!live)
      log.info({ rooms: rooms.length }, 'redis cluster subscriptions proven on every shard');
    live = true;
    for (const room of provenOn.keys()) if (!rooms.includes(room)) provenOn.delete(room);
    // A room that moved to another connection may have missed messages meanwhile.
    if (changed.length > 0) void streams.recheck(changed);
    return true;
  };

  const schedule = (): void => {
    if (closed || running) return;
    running = resubscribe().then((ok) => {
      running = undefined;
      if (!ok && !closed) {
        clearTimeout(retry);
        retry = setTimeout(schedule, RESUBSCRIBE_RETRY_MS);
        retry.unref();
      }
    });
  };
  const down = (why: string) => (): void => {
    if (closed) return;
    generation += 1;
    streams.interrupted();
    if (live) log.warn({ why }, 'redis cluster subscriber lost; not ready until resubscribed');
    live = false;
    schedule();
  };
  const onNodeGone = down('subscriber connection ended');
  const onSubscriberRemoved = down('subscriber replaced');
  const onMoved = down('slot moved');
  const onClose = down('cluster connection closed');
  const onReady = (): void => {
    if (!live) schedule();
  };
  topology.groupEvents.on('-node', onNodeGone);
  topology.groupEvents.on('moved', onMoved);
  sub.on('-subscriber', onSubscriberRemoved);
  sub.on('close', onClose);
  sub.on('subscribersReady', onReady);
  sub.on('ready', onReady);

  // Counts the nodes for server-side requests (cluster views): on the master of the request
  // channel's slot only, where every node's subscription to it lives. The adapter's own count
  // asks every node of the cluster and rejects (unhandled) when any one of them is down.
  let lastCount = 1;
  adapter.serverCount = async () => {
    try {
      const node = topology.masterOf(slotOf(adapter.channel));
      if (!node) return lastCount;
      const reply = await node.call('PUBSUB', 'SHARDNUMSUB', adapter.channel);
      const count = Number(Array.isArray(reply) ? reply[1] : Object.values(reply as object)[0]);
      if (Number.isInteger(count) && count > 0) lastCount = count;
      return lastCount;
    } catch {
      return lastCount;
    }
  };

  // Before serving: the request and response channels (and nothing else yet) proven subscribed.
  const deadline = Date.now() + 15_000;
  while (!(await resubscribe())) {
    if (Date.now() > deadline)
      throw new Error('cannot subscribe to the Redis Cluster (sharded pub/sub)');
    await new Promise((r) => setTimeout(r, RESUBSCRIBE_RETRY_MS));
  }

  return {
    live: () => live,
    async subscribe(room) {
      const channel = adapterChannelFor(room);
      const connection = topology.subscriberFor(channel);
      // No connection for the slot (a failover in progress): the room is subscribed again with
      // every other local room once the slot has a master.
      if (!connection) throw new Error('redis subscriber not connected');
      // Joins of one room at once (its hold and the join's own wait, a storm's rejoins) share the
      // room's SSUBSCRIBE in flight on this connection: its answer proves the subscription for
      // each of them (a room forgotten meanwhile, unsubscribed by the adapter, starts over).
      let sent = subscribing.get(room);
      if (sent?.on !== connection) {
        const answer = connection.ssubscribe(channel);
        sent = subscribing.keep(room, { on: connection, answer }, answer);
      }
      await sent.answer;
      const before = provenOn.get(room);
      provenOn.set(room, connection);
      // Proven on another connection than before: the room may have missed messages meanwhile.
      if (before && before !== connection) void streams.recheck([room]);
    },
    forget(room) {
      provenOn.delete(room);
      subscribing.delete(room);
    },
    close() {
      closed = true;
      clearTimeout(retry);
      topology.groupEvents.off('-node', onNodeGone);
      topology.groupEvents.off('moved', onMoved);
      sub.off('-subscriber', onSubscriberRemoved);
      sub.off('close', onClose);
      sub.off('subscribersReady', onReady);
      sub.off('ready', onReady);
    },
  };
}
