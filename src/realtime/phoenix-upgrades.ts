import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Socket as NetSocket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { PhoenixEndpoint } from './phoenix-endpoint.js';

/** engine.io's own wait before it ends an upgrade nobody answered (`destroyUpgradeTimeout`). */
export const UNCLAIMED_UPGRADE_MS = 1000;

/**
 * Routes the HTTP server's WebSocket upgrades. engine.io (Socket.IO) answers those under its path
 * by itself; this listener takes the Phoenix endpoint's, and ends any other that nothing answered
 * within {@link UNCLAIMED_UPGRADE_MS} (what engine.io did before, with `destroyUpgrade`).
 *
 * The Socket.IO server is created with `destroyUpgrade: false` because engine.io would end every
 * upgrade outside its path that has written nothing after 1 s: a Phoenix handshake whose
 * authentication (an async `authenticateSocket` hook) takes longer would be cut.
 */
export function routeUpgrades(
  http: HttpServer,
  routes: { socketPath: string; phoenix: PhoenixEndpoint | undefined },
): void {
  // engine.io's check: the request URL starts with its path and a slash.
  const enginePath = `${routes.socketPath.replace(/\/$/, '')}/`;
  http.on('upgrade', (req: IncomingMessage, duplex: Duplex, head: Buffer) => {
    const url = req.url ?? '';
    const socket = duplex as NetSocket;
    if (url.startsWith(enginePath)) return;
    if (routes.phoenix?.matches(url)) return routes.phoenix.handleUpgrade(req, socket, head);
    socket.on('error', () => {});
    setTimeout(() => {
      if (socket.writable && socket.bytesWritten <= 0) socket.end();
    }, UNCLAIMED_UPGRADE_MS).unref();
  });
}
