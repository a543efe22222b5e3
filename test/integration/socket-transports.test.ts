import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { io } from 'socket.io-client';
import { connectClient, postJson, startNode, token, type TestNode } from '../support/nodes.js';

/**
 * `socketTransports: ['websocket']` (PUSHCAST_SOCKET_TRANSPORTS=websocket): WebSocket clients are
 * served as ever, and HTTP long-polling is refused at the Engine.IO level.
 */
describe('WebSocket-only Socket.IO', () => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startNode({ socketTransports: ['websocket'] });
  });
  afterAll(async () => {
    await node?.stop();
  });

  it('serves WebSocket clients: connect, join, receive a push', async () => {
    const client = await connectClient(node.url, {
      token: await token({ sub: 'u1', channels: ['ws-only:1'] }),
    });
    try {
      expect(await client.join('ws-only:1')).toMatchObject({ ok: true });
      const res = await postJson(`${node.url}/api/push`, {
        channel: 'ws-only:1',
        event: 'e',
        data: 1,
      });
      expect(res.status).toBe(200);
      expect(await client.waitFor(1)).toMatchObject([{ channel: 'ws-only:1', data: 1 }]);
    } finally {
      client.close();
    }
  });

  it('refuses HTTP long-polling: the handshake request answers 400 "Transport unknown"', async () => {
    const res = await fetch(`${node.url}/socket.io/?EIO=4&transport=polling`);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ code: 0, message: 'Transport unknown' });
    // A standard client limited to polling gets a connect_error, never a connection.
    const socket = io(node.url, {
      auth: { token: await token({ sub: 'u2', channels: ['ws-only:1'] }) },
      transports: ['polling'],
      reconnection: false,
    });
    try {
      const outcome = await new Promise<string>((resolve) => {
        socket.once('connect', () => resolve('connected'));
        socket.once('connect_error', () => resolve('refused'));
      });
      expect(outcome).toBe('refused');
    } finally {
      socket.close();
    }
  });
});
