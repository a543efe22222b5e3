import type { Config } from '../config/schema.js';

/**
 * Whether a browser origin may open a socket, by the `corsOrigins` setting: `*`, or a list. CORS
 * headers only guard long-polling; a browser's WebSocket carries its Origin too, so every socket
 * endpoint (engine.io's, the direct Socket.IO one, Phoenix) asks this. Clients that send no Origin
 * (servers) pass.
 */
export function originGuard(
  corsOrigins: Config['corsOrigins'],
): (origin: string | undefined) => boolean {
  if (corsOrigins === '*') return () => true;
  const allowed: ReadonlySet<string> = new Set(corsOrigins);
  return (origin) => origin === undefined || allowed.has(origin);
}
