import type { Server } from 'socket.io';

/**
 * Closes every socket at the transport level (`socket.conn.close()`), spread evenly over
 * `spreadMs` so the other nodes do not take every reconnect at once. A transport close, unlike a
 * server-side `socket.disconnect()`, leaves standard Socket.IO clients reconnecting by themselves.
 */
export async function closeSocketsSpread(io: Server, spreadMs: number): Promise<number> {
  const sockets = [...io.of('/').sockets.values()];
  if (sockets.length === 0) return 0;
  const step = sockets.length > 1 ? spreadMs / (sockets.length - 1) : 0;
  const started = Date.now();
  for (let i = 0; i < sockets.length; i++) {
    const due = started + i * step;
    const wait = due - Date.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    sockets[i]!.conn.close();
  }
  return sockets.length;
}
