import type { Server } from 'socket.io';

/** A connection that is not an engine.io socket (direct Socket.IO, Phoenix): drain closes it too. */
export interface TransportConnection {
  /** Closes it at the transport level, so that the client reconnects by itself. */
  closeTransport(): void;
}

/**
 * Closes every socket at the transport level (`socket.conn.close()`), spread evenly over
 * `spreadMs` so the other nodes do not take every reconnect at once. A transport close, unlike a
 * server-side `socket.disconnect()`, leaves standard Socket.IO clients reconnecting by themselves.
 * The connection hub's connections (`others`: direct Socket.IO, Phoenix) are closed in the same
 * spread.
 */
export async function closeSocketsSpread(
  io: Server,
  spreadMs: number,
  others: Iterable<TransportConnection> = [],
): Promise<number> {
  const closers: Array<() => void> = [
    ...[...io.of('/').sockets.values()].map((socket) => () => socket.conn.close()),
    ...[...others].map((connection) => () => connection.closeTransport()),
  ];
  if (closers.length === 0) return 0;
  const step = closers.length > 1 ? spreadMs / (closers.length - 1) : 0;
  const started = Date.now();
  for (let i = 0; i < closers.length; i++) {
    const due = started + i * step;
    const wait = due - Date.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    closers[i]!();
  }
  return closers.length;
}
