import type { Socket as NetSocket } from 'node:net';
import type { Socket } from 'socket.io';

/*
 * What is read here of engine.io is untyped or private in its typings; the version is pinned by
 * socket.io 4.8.4 (package.json), and test/integration/upgrade-request.test.ts fails if a
 * connection's upgrade request is no longer let go.
 */
interface EngineConn {
  request?: unknown;
  transport: { name: string; socket?: { _socket?: NetSocket } };
  once(event: 'upgrade', listener: () => void): void;
}

/**
 * The listener engine.io's upgrade response object (`WebSocketResponse`) puts on the TCP socket
 * in its constructor, to forward `close` to middlewares. It holds that object, and the object the
 * whole upgrade request, for as long as the socket lives.
 */
const RESPONSE_CLOSE = '() => this.emit("close")';

/**
 * Lets go of the HTTP request a connection was made with, once the handshake is built from it:
 * engine.io keeps it for the connection's life (as `conn.request`, and through the upgrade
 * response's `close` listener on the TCP socket) and nothing reads it afterwards (the handshake
 * keeps its headers). The request, its raw headers and stream state are the largest part of an
 * idle connection after Socket.IO's own objects (BENCHMARKS.md). pushcast registers no engine.io
 * middleware, the only reader of that response's `close`. A connection that starts on long-polling
 * is let go of again when it upgrades to WebSocket. Returns whether the WebSocket's listener was
 * found (false on long-polling until the upgrade).
 */
export function releaseUpgradeRequest(socket: Socket): boolean {
  const conn = socket.conn as unknown as EngineConn;
  conn.request = undefined;
  if (conn.transport.name !== 'websocket') {
    conn.once('upgrade', () => void releaseUpgradeRequest(socket));
    return false;
  }
  const tcp = conn.transport.socket?._socket;
  const listener = tcp?.listeners('close').find((l) => l.toString() === RESPONSE_CLOSE);
  if (!tcp || !listener) return false;
  tcp.off('close', listener as () => void);
  return true;
}
