import { connect } from 'node:net';

/** A node's `pushcast_inflight_pushes` gauge, read from /metrics (no Redis involved). */
export function inflightPushes(url: string): Promise<number> {
  return metricValue(url, 'pushcast_inflight_pushes');
}

/** One unlabelled figure of a node's /metrics (0 when absent). */
export async function metricValue(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
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
