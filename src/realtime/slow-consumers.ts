import type { Logger } from 'pino';
import type { Server, Socket } from 'socket.io';
import type { PhoenixConnection } from './phoenix-connection.js';
import type { PhoenixHub } from './phoenix-hub.js';

/** What the watch needs; `maxBytes` is `limits.maxSocketBufferKb` in bytes. */
export interface SlowConsumerOptions {
  maxBytes: number;
  /** How often every connection of the node is looked at (default 250 ms). */
  intervalMs?: number;
  log: Logger;
  /** Called once per connection disconnected for being too slow (metrics). */
  onDisconnect?(info: { conn: string; bytes: number }): void;
}

export interface SlowConsumerWatch {
  stop(): void;
}

/** A connection as the watch sees it, whichever its transport. */
export interface Consumer {
  /** The connection id of the log lines. */
  readonly id: string;
  /** The transport in the log line: `websocket`, `polling`, `phoenix`. */
  readonly transport: string;
  /** Output held in user space, not yet taken by the kernel; may stop counting past `limit`. */
  unsentBytes(limit?: number): number;
  /** Closes it at the transport level at once, without waiting for its backlog. */
  cut(): void;
}

/** The node's connections of one transport, read on every pass of the watch. */
export type ConsumerSource = () => Iterable<Consumer>;

/** The parts of engine.io's connection read here (untyped or private in its typings). */
interface EnginePacket {
  data?: unknown;
}
interface EngineConn {
  writeBuffer: EnginePacket[];
  transport: { name: string; socket?: { bufferedAmount?: number; terminate?(): void } };
  close(discard?: boolean): void;
}

/**
 * Disconnects, alone, every connection whose unsent output passes `maxBytes`, so that a client
 * that stops reading costs the node a bounded amount of memory and never holds up anyone else.
 *
 * Nothing is done per message: a timer walks the node's connections (every source, so one pass
 * for both transports) every `intervalMs` and asks each what it has not sent yet, in user space.
 * What the kernel has already taken is not counted.
 *
 * A slow connection is closed at the transport level, as if the network dropped: standard
 * clients, the pushcast SDK and phoenix.js reconnect by themselves (and rejoin with `since`).
 */
export function watchSlowConsumers(
  sources: readonly ConsumerSource[],
  options: SlowConsumerOptions,
): SlowConsumerWatch {
  const { maxBytes, log } = options;
  const timer = setInterval(() => {
    for (const source of sources)
      for (const consumer of source()) if (consumer.unsentBytes(maxBytes) > maxBytes) cut(consumer);
  }, options.intervalMs ?? 250);
  timer.unref();

  function cut(consumer: Consumer): void {
    const bytes = consumer.unsentBytes();
    log.warn(
      { conn: consumer.id, transport: consumer.transport, bytes, limit: maxBytes },
      'slow consumer disconnected: unsent output over the limit',
    );
    consumer.cut();
    try {
      options.onDisconnect?.({ conn: consumer.id, bytes });
    } catch (err) {
      log.error({ err }, 'slow consumer listener failed');
    }
  }

  return { stop: () => clearInterval(timer) };
}

/**
 * Socket.IO sockets as consumers. Unsent output is the packets queued in engine.io (its
 * `writeBuffer`, the only queue of the polling transport) and, for WebSocket, what the `ws`
 * socket holds (`bufferedAmount`: its frame queue and the net.Socket's `writableLength`). String
 * packets count their length in characters (a lower bound of their bytes, without scanning them).
 */
export function socketIoConsumers(io: Server): ConsumerSource {
  return function* () {
    for (const socket of io.of('/').sockets.values()) yield new SocketIoConsumer(socket);
  };
}

class SocketIoConsumer implements Consumer {
  constructor(private readonly socket: Socket) {}

  get id(): string {
    return this.socket.id;
  }

  get transport(): string {
    return this.socket.conn.transport.name;
  }

  unsentBytes(limit?: number): number {
    return unsentBytes(this.socket.conn, limit);
  }

  /**
   * Never a Socket.IO DISCONNECT packet, which would wait behind the backlog and which clients
   * take as "do not reconnect".
   */
  cut(): void {
    const conn = this.socket.conn as unknown as EngineConn;
    const ws = conn.transport.name === 'websocket' ? conn.transport.socket : undefined;
    // `close(true)` closes without waiting for the buffer to drain (it would wait for ever on a
    // client that stopped reading); the socket leaves its rooms at once ("forced close").
    conn.close(true);
    // ws would queue its close frame behind the backlog and keep it all for up to 30 s: drop the
    // TCP connection now. The client reads what the kernel already holds, then sees it closed.
    ws?.terminate?.();
  }
}

/**
 * Phoenix connections as consumers: unsent output is what the `ws` socket holds (frame queue and
 * net.Socket buffer); a slow one is terminated (the TCP connection dropped).
 */
export function phoenixConsumers(hub: PhoenixHub<PhoenixConnection>): ConsumerSource {
  return function* () {
    for (const connection of hub.connections()) yield new PhoenixConsumer(connection);
  };
}

class PhoenixConsumer implements Consumer {
  readonly transport = 'phoenix';

  constructor(private readonly connection: PhoenixConnection) {}

  get id(): string {
    return this.connection.id;
  }

  unsentBytes(): number {
    return this.connection.unsentBytes;
  }

  cut(): void {
    this.connection.terminate();
  }
}

/** Bytes `conn` holds and has not written to the kernel; stops counting once past `limit`. */
export function unsentBytes(socketConn: Socket['conn'], limit = Infinity): number {
  const conn = socketConn as unknown as EngineConn;
  let bytes = 0;
  if (conn.transport.name === 'websocket') bytes += conn.transport.socket?.bufferedAmount ?? 0;
  for (const packet of conn.writeBuffer) {
    if (bytes > limit) break;
    bytes += sizeOf(packet.data);
  }
  return bytes;
}

function sizeOf(data: unknown): number {
  if (typeof data === 'string') return data.length;
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return data.byteLength;
  return 0;
}
