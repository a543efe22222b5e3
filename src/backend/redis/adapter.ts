import { createAdapter, createShardedAdapter } from '@socket.io/redis-adapter';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Server } from 'socket.io';
import { channelOfRoom } from '../../delivery/names.js';
import { adapterChannelFor } from './envelope.js';

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
}

/** The one pattern the classic adapter subscribes to (its key prefix and the `/` namespace). */
const CLASSIC_PATTERN = 'socket.io#/#*';

/** The classic adapter gets a JSON parser so the publish script can write its messages in Lua. */
const jsonParser = {
  encode: (value: unknown): string => JSON.stringify(value),
  decode: (raw: Buffer | string): unknown => JSON.parse(raw.toString()) as unknown,
};

/**
 * Wires `@socket.io/redis-adapter` (sharded: Redis 7 sharded pub/sub with one shard channel per
 * room, subscribed while the room has local members; or classic pub/sub) onto the server.
 */
export async function installRedisAdapter(
  io: Server,
  clients: { pub: Redis; sub: Redis },
  mode: 'sharded' | 'classic',
  log: Logger,
): Promise<AdapterWiring> {
  const { pub, sub } = clients;
  if (mode === 'sharded') {
    io.adapter(createShardedAdapter(pub, sub, { subscriptionMode: 'dynamic' }));
  } else {
    io.adapter(createAdapter(pub, sub, { parser: jsonParser }));
    // The classic adapter listens with one pattern; make sure it is active before serving.
    await sub.psubscribe(CLASSIC_PATTERN);
  }
  const adapter = io.of('/').adapter;

  // Redis came back after an outage: a room whose SSUBSCRIBE was sent (and failed) while it was
  // down is not in ioredis' resubscribe set, so subscribe every local room again. Idempotent.
  // Registered after the first `ready` (connectRedis waits for it): every `ready` here is a reconnect.
  let live = true;
  sub.on('close', () => {
    live = false;
  });
  sub.on('ready', () => {
    const rooms = [...adapter.rooms.keys()].filter((room) => channelOfRoom(room) !== undefined);
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
      },
      (err: Error) =>
        log.warn({ err: err.message }, 'resubscribe failed; retried on the next reconnect'),
    );
  });

  return {
    live: () => live,
    async ensureSubscribed(room) {
      // Not connected: an SSUBSCRIBE would wait in the offline queue for the whole outage, and
      // proves nothing the reconnect above does not redo.
      if (sub.status !== 'ready') throw new Error('redis subscriber not connected');
      if (mode === 'sharded') await sub.ssubscribe(adapterChannelFor(room));
      else await sub.ping();
    },
  };
}
