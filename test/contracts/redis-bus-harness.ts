import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { Server, type Socket as ServerSocket } from 'socket.io';
import { io as connectSocket } from 'socket.io-client';
import { createBackend, type Backend } from '../../src/backend/backend.js';
import { configSchema, type ConfigInput } from '../../src/config/schema.js';
import type { HistoryPolicy } from '../../src/delivery/history-policy.js';
import type { ChannelMessage } from '../../src/delivery/message.js';
import { roomOf } from '../../src/delivery/names.js';
import type { BusHarness } from '../support/contracts.js';

/**
 * A RedisBus as a node builds it (createBackend: the Socket.IO Redis adapter on a real Server),
 * with one real socket.io-client connection whose server-side socket joins the listened rooms.
 * `received` records each `msg` the node hands that socket, at the moment the adapter delivers it
 * (onAnyOutgoing), so `settle` can be held to its word. `config` names the Redis (a URL and mode,
 * or cluster seeds) and anything else the test needs.
 */
export async function backendBusHarness(
  config: ConfigInput,
  history: HistoryPolicy,
): Promise<BusHarness & { backend: Backend }> {
  const http = createServer();
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const { port } = http.address() as AddressInfo;
  const io = new Server(http, { transports: ['websocket'] });
  const backend = await createBackend({
    config: configSchema.parse({
      env: 'test',
      logLevel: 'silent',
      ...config,
      redis: { keyPrefix: `ct${Math.random().toString(36).slice(2, 10)}`, ...config.redis },
    }),
    io,
    history,
    log: pino({ level: 'silent' }),
  });
  const connected = new Promise<ServerSocket>((resolve) => io.once('connection', resolve));
  const client = connectSocket(`http://127.0.0.1:${port}`, {
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
  });
  const socket = await connected;
  const received: ChannelMessage[] = [];
  socket.onAnyOutgoing((event: string, message: ChannelMessage) => {
    if (event === 'msg') received.push(message);
  });
  return {
    bus: backend.bus,
    backend,
    received,
    async listen(channel) {
      const room = roomOf(channel);
      await socket.join(room);
      await backend.ensureSubscribed(room);
    },
    async close() {
      client.close();
      await io.close();
      await backend.close();
    },
  };
}

/** The harness on one Redis, sharded or classic pub/sub. */
export function redisBusHarness(
  url: string,
  mode: 'sharded' | 'classic',
  history: HistoryPolicy,
): Promise<BusHarness> {
  return backendBusHarness({ redisUrl: url, redis: { mode } }, history);
}
