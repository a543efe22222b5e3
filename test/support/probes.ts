import { connect } from 'node:net';

/** A node's `pushcast_inflight_pushes` gauge, read from /metrics (no Redis involved). */
export async function inflightPushes(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(/^pushcast_inflight_pushes (\d+)/m.exec(text)?.[1] ?? 0);
}

/** Whether a new TCP connection to the loopback port is accepted. */
export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
