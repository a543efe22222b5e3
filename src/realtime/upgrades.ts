import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Socket as NetSocket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { PhoenixEndpoint } from './phoenix-endpoint.js';
import type { SocketIoEndpoint } from './socketio-endpoint.js';

/** engine.io's own wait before it ends an upgrade nobody answered (`destroyUpgradeTimeout`). */
export const UNCLAIMED_UPGRADE_MS = 1000;

type UpgradeListener = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

/**
 * Routes the HTTP server's WebSocket upgrades, in one listener: under the Socket.IO path a new
 * WebSocket (protocol 4, no session id) goes to the Socket.IO WebSocket endpoint and every other
 * upgrade (a long-polling session upgrading, an old protocol) to engine.io's own listener, which
 * is taken off the server for that; the Phoenix endpoint's path to it; any other upgrade that
 * nothing answered is ended after {@link UNCLAIMED_UPGRADE_MS} (what engine.io did before, with
 * `destroyUpgrade`).
 *
 * The Socket.IO server is created with `destroyUpgrade: false` because engine.io would end every
 * upgrade outside its path that has written nothing after 1 s: a Phoenix handshake whose
 * authentication (an async `authenticateSocket` hook) takes longer would be cut.
 */
export function routeUpgrades(
  http: HttpServer,
  routes: {
    socketPath: string;
    phoenix: PhoenixEndpoint | undefined;
    socketIo: SocketIoEndpoint | undefined;
  },
): void {
  // engine.io's check: the request URL starts with its path and a slash.
  const enginePath = `${routes.socketPath.replace(/\/$/, '')}/`;
  // engine.io's listener (attached when the Socket.IO server was created), called from here.
  const engine = http.listeners('upgrade') as UpgradeListener[];
  for (const listener of engine) http.off('upgrade', listener);
  http.on('upgrade', (req: IncomingMessage, duplex: Duplex, head: Buffer) => {
    const url = req.url ?? '';
    const socket = duplex as NetSocket;
    if (url.startsWith(enginePath)) {
      if (routes.socketIo?.handleUpgrade(req, socket, head)) return;
      for (const listener of engine) listener.call(http, req, duplex, head);
      return;
    }
    if (routes.phoenix?.matches(url)) return routes.phoenix.handleUpgrade(req, socket, head);
    socket.on('error', () => {});
    setTimeout(() => {
      if (socket.writable && socket.bytesWritten <= 0) socket.end();
    }, UNCLAIMED_UPGRADE_MS).unref();
  });
}
