import { createAdapter, createShardedAdapter } from '@socket.io/redis-adapter';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Server } from 'socket.io';
import { channelOfRoom } from '../delivery/names.js';
import { adapterChannelFor } from './envelope.js';

/** Installs the Redis adapter on the server and owns its subscriptions. */
export interface AdapterWiring {
  /** Resolves once this node's subscription for the room is active in Redis. */
  ensureSubscribed(room: string): Promise<void>;
}

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
    await sub.psubscribe('socket.io#/#*');
  }
  const adapter = io.of('/').adapter;

  // Redis came back after an outage: a room whose SSUBSCRIBE was sent (and failed) while it was
  // down is not in ioredis' resubscribe set, so subscribe every local room again. Idempotent.
  let first = true;
  sub.on('ready', () => {
    if (first) {
      first = false;
      return;
    }
    if (mode !== 'sharded') return;
    let count = 0;
    for (const room of adapter.rooms.keys()) {
      if (channelOfRoom(room) === undefined) continue;
      count += 1;
      void sub
        .ssubscribe(adapterChannelFor(room))
        .catch((err: Error) => log.warn({ err: err.message, room }, 'resubscribe failed'));
    }
    log.info({ rooms: count }, 'redis subscriber reconnected; rooms resubscribed');
  });

  return {
    async ensureSubscribed(room) {
      if (mode === 'sharded') await sub.ssubscribe(adapterChannelFor(room));
      else await sub.ping();
    },
  };
}
