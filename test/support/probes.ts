import { connect, Socket as NetSocket } from 'node:net';

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

/**
 * Counts the system writes (`_write`, or one `_writev` for what was held while corked) of this
 * process's TCP sockets whose peer port is `peerPort`: a server's end of a test client's
 * connection. `chunks` has one entry per write: how many chunks it carried. Call `stop()` to put
 * Node's stream methods back.
 */
export function countWritesTo(peerPort: number): {
  readonly count: number;
  readonly chunks: number[];
  stop(): void;
} {
  type Write = (this: NetSocket, ...args: unknown[]) => unknown;
  const proto = NetSocket.prototype as unknown as Record<'_write' | '_writev', Write>;
  const originals = { _write: proto._write, _writev: proto._writev };
  const chunks: number[] = [];
  for (const name of ['_write', '_writev'] as const)
    proto[name] = function (this: NetSocket, ...args: unknown[]) {
      if (this.remotePort === peerPort)
        chunks.push(name === '_write' ? 1 : (args[0] as unknown[]).length);
      return originals[name].apply(this, args);
    };
  return {
    get count() {
      return chunks.length;
    },
    chunks,
    stop: () => void Object.assign(proto, originals),
  };
}
