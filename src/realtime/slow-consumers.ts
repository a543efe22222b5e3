import type { Logger } from 'pino';
import type { Server, Socket } from 'socket.io';

/** What the watch needs; `maxBytes` is `limits.maxSocketBufferKb` in bytes. */
export interface SlowConsumerOptions {
  maxBytes: number;
  /** How often every socket of the node is looked at (default 250 ms). */
  intervalMs?: number;
  log: Logger;
  /** Called once per socket disconnected for being too slow (metrics). */
  onDisconnect?(info: { conn: string; bytes: number }): void;
}

export interface SlowConsumerWatch {
  stop(): void;
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
 * Disconnects, alone, every socket whose unsent output passes `maxBytes`, so that a client that
 * stops reading costs the node a bounded amount of memory and never holds up anyone else.
 *
 * Nothing is done per message: a timer walks the node's sockets every `intervalMs` and adds up what
 * each one has not sent yet, in user space: the packets queued in engine.io (its `writeBuffer`, the
 * only queue of the polling transport) and, for WebSocket, what the `ws` socket holds
 * (`bufferedAmount`: its frame queue and the net.Socket's `writableLength`). What the kernel has
 * already taken is not counted. String packets count their length in characters (a lower bound of
 * their bytes, without scanning them).
 *
 * A slow socket is closed at the transport level, never with a Socket.IO DISCONNECT packet (which
 * would wait behind the backlog, and which clients take as "do not reconnect"): standard clients
 * and the pushcast SDK see a transport close, reconnect by themselves and rejoin with `since`.
 */
export function watchSlowConsumers(io: Server, options: SlowConsumerOptions): SlowConsumerWatch {
  const { maxBytes, log } = options;
  const timer = setInterval(() => {
    for (const socket of io.of('/').sockets.values()) {
      const bytes = unsentBytes(socket.conn, maxBytes);
      if (bytes > maxBytes) disconnect(socket);
    }
  }, options.intervalMs ?? 250);
  timer.unref();

  function disconnect(socket: Socket): void {
    const bytes = unsentBytes(socket.conn);
    const conn = socket.conn as unknown as EngineConn;
    const transport = conn.transport.name;
    const ws = transport === 'websocket' ? conn.transport.socket : undefined;
    log.warn(
      { conn: socket.id, transport, bytes, limit: maxBytes },
      'slow consumer disconnected: unsent output over the limit',
    );
    // `close(true)` closes without waiting for the buffer to drain (it would wait for ever on a
    // client that stopped reading); the socket leaves its rooms at once ("forced close").
    conn.close(true);
    // ws would queue its close frame behind the backlog and keep it all for up to 30 s: drop the
    // TCP connection now. The client reads what the kernel already holds, then sees it closed.
    ws?.terminate?.();
    try {
      options.onDisconnect?.({ conn: socket.id, bytes });
    } catch (err) {
      log.error({ err }, 'slow consumer listener failed');
    }
  }

  return { stop: () => clearInterval(timer) };
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
