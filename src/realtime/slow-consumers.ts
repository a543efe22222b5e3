import type { Logger } from 'pino';
import type { Server, Socket } from 'socket.io';
import type { ConnectionHub, HubConnection } from './connection-hub.js';

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

/**
 * One transport's connections as the watch sees them. The connections are the transport's own
 * objects, read through these functions: a pass allocates nothing per connection (it walks every
 * connection of the node four times a second).
 */
export interface ConsumerSource<C = unknown> {
  /** The transport in the log line: `socket.io` sockets say theirs (`websocket`, `polling`). */
  transport(connection: C): string;
  /** The node's connections of this transport now. */
  connections(): Iterable<C>;
  /** The connection id of the log lines. */
  id(connection: C): string;
  /** Output held in user space, not yet taken by the kernel; may stop counting past `limit`. */
  unsentBytes(connection: C, limit?: number): number;
  /** Closes it at the transport level at once, without waiting for its backlog. */
  cut(connection: C): void;
}

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
      for (const connection of source.connections())
        if (source.unsentBytes(connection, maxBytes) > maxBytes) cut(source, connection);
  }, options.intervalMs ?? 250);
  timer.unref();

  function cut(source: ConsumerSource, connection: unknown): void {
    const bytes = source.unsentBytes(connection);
    const conn = source.id(connection);
    log.warn(
      { conn, transport: source.transport(connection), bytes, limit: maxBytes },
      'slow consumer disconnected: unsent output over the limit',
    );
    source.cut(connection);
    try {
      options.onDisconnect?.({ conn, bytes });
    } catch (err) {
      log.error({ err }, 'slow consumer listener failed');
    }
  }

  return { stop: () => clearInterval(timer) };
}

/**
 * Socket.IO sockets. Unsent output is the packets queued in engine.io (its `writeBuffer`, the
 * only queue of the polling transport) and, for WebSocket, what the `ws` socket holds
 * (`bufferedAmount`: its frame queue and the net.Socket's `writableLength`). String packets count
 * their length in characters (a lower bound of their bytes, without scanning them).
 */
export function socketIoConsumers(io: Server): ConsumerSource<Socket> {
  return {
    connections: () => io.of('/').sockets.values(),
    id: (socket) => socket.id,
    transport: (socket) => socket.conn.transport.name,
    unsentBytes: (socket, limit) => unsentBytes(socket.conn, limit),
    // Never a Socket.IO DISCONNECT packet, which would wait behind the backlog and which clients
    // take as "do not reconnect".
    cut: (socket) => {
      const conn = socket.conn as unknown as EngineConn;
      const ws = conn.transport.name === 'websocket' ? conn.transport.socket : undefined;
      // `close(true)` closes without waiting for the buffer to drain (it would wait for ever on a
      // client that stopped reading); the socket leaves its rooms at once ("forced close").
      conn.close(true);
      // ws would queue its close frame behind the backlog and keep it all for up to 30 s: drop
      // the TCP connection now. The client reads what the kernel already holds, then sees it
      // closed.
      ws?.terminate?.();
    },
  };
}

/**
 * The hub's connections (Phoenix, and Socket.IO on a plain WebSocket): unsent output is what the
 * `ws` socket holds (frame queue and net.Socket buffer); a slow one is terminated (the TCP
 * connection dropped).
 */
export function hubConsumers(hub: ConnectionHub): ConsumerSource<HubConnection> {
  return {
    connections: () => hub.connections(),
    id: (connection) => connection.id,
    transport: (connection) => connection.transport,
    unsentBytes: (connection) => connection.unsentBytes,
    cut: (connection) => connection.terminate(),
  };
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
