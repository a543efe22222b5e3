import type { IncomingMessage } from 'node:http';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '../support/assertions.js';
import { connectClient, startNode, token, type TestNode } from '../support/nodes.js';

// A full garbage collection on demand, in this process (the node runs in it).
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/**
 * An idle connection keeps nothing of the HTTP request it was made with (src/realtime/
 * upgrade-request.ts): engine.io held it for the connection's life, through `conn.request` and the
 * upgrade response's `close` listener on the TCP socket. Each request a connection is made with is
 * watched through a WeakRef; once the connection is up and idle, a full GC must collect it.
 */
describe('the upgrade request of a connection', () => {
  let node: TestNode;
  const requests: Array<WeakRef<IncomingMessage>> = [];
  beforeAll(async () => {
    node = await startNode();
    // The handshake request (initial_headers) and every upgrade request (headers).
    const watch = (_headers: unknown, req: IncomingMessage): void =>
      void requests.push(new WeakRef(req));
    node.server.io.engine.on('initial_headers', watch);
    node.server.io.engine.on('headers', watch);
    // And every WebSocket upgrade, the direct endpoint's (src/realtime/socketio-endpoint.ts) too.
    node.server.http.on('upgrade', (req: IncomingMessage) => watch(undefined, req));
  });
  afterAll(async () => node?.stop());

  /** How many of the watched requests are still reachable after a full GC. */
  async function heldAfterGc(): Promise<number> {
    // WeakRefs stay alive until the current job ends.
    await new Promise((r) => setImmediate(r));
    gc();
    return requests.filter((r) => r.deref() !== undefined).length;
  }

  it('is let go once a WebSocket connection is up (direct or engine.io), and after a long-polling one upgrades', async () => {
    const jwt = await token({ sub: 'u', channels: ['up:a'] });
    const ws = await connectClient(node.url, { token: jwt });
    const upgraded = await connectClient(
      node.url,
      { token: jwt },
      { transports: ['polling', 'websocket'] },
    );
    try {
      await ws.join('up:a');
      await until(() => upgraded.socket.io.engine.transport.name === 'websocket', 5000, 'upgraded');
      await upgraded.join('up:a');
      // The direct WebSocket's upgrade, and the upgraded one's handshake, polls and upgrade.
      expect(requests.length).toBeGreaterThanOrEqual(4);
      expect(await heldAfterGc()).toBe(0);
    } finally {
      ws.close();
      upgraded.close();
    }
  });
});
