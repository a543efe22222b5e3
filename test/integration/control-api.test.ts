import { io as connectSocket } from 'socket.io-client';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createClient,
  PushcastDisconnectedError,
  type LeftInfo,
  type PushMessage,
} from '../../src/client/index.js';
import { errorCatalogue } from '../../src/errors.js';
import { expectExactly, until } from '../support/assertions.js';
import { useRedisCluster } from '../support/cluster.js';
import { disconnectUser, unsubscribeUser, watchEnd } from '../support/control.js';
import {
  API_KEY,
  connectClient,
  postJson,
  token,
  type TestClient,
  type TestNode,
} from '../support/nodes.js';
import { rawConnect, wsUrl } from '../support/phoenix.js';

/**
 * The control API (docs/protocol.md, "Control routes") across three real nodes on a real Redis:
 * a backend disconnects a user, or unsubscribes one from a channel, wherever their sockets are.
 */

async function getJson(node: TestNode, path: string): Promise<any> {
  const res = await fetch(`${node.url}${path}`, {
    headers: { authorization: `Bearer ${API_KEY}` },
  });
  expect(res.status, path).toBe(200);
  return res.json();
}

const subscribers = async (node: TestNode, channel: string): Promise<number> =>
  ((await getJson(node, `/api/channels/${channel}`)) as { subscribers: number }).subscribers;

async function push(node: TestNode, channel: string, data: unknown = null): Promise<string> {
  const res = await postJson(`${node.url}/api/push`, { channel, event: 'e', data });
  expect(res.status).toBe(200);
  return res.body.id as string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('control API across three nodes on Redis', () => {
  const cluster = useRedisCluster({ nodes: 3 });
  const open: Array<{ close(): unknown }> = [];
  afterEach(() => {
    for (const c of open.splice(0)) c.close();
  });

  /** A plain socket.io-client of `sub` on `node`, joined to `channels`. */
  async function socketOf(node: TestNode, sub: string, channels: string[]): Promise<TestClient> {
    const client = await connectClient(node.url, {
      token: await token({ sub, channels: channels.map((c) => `${c.split(':')[0]}:*`) }),
    });
    open.push(client);
    for (const channel of channels) expect(await client.join(channel)).toMatchObject({ ok: true });
    return client;
  }

  it('disconnect closes every connection of the user on every node, both transports, and tells each why', async () => {
    const [n0, n1, n2] = cluster.nodes as [TestNode, TestNode, TestNode];
    const alice = [
      await socketOf(n0, 'alice', ['dc:room']),
      await socketOf(n0, 'alice', ['dc:room']),
      await socketOf(n1, 'alice', ['dc:room', 'dc:other']),
    ];
    // A stock client with Socket.IO's own reconnection on: it must not come back by itself.
    const stock = connectSocket(n2.url, {
      auth: { token: await token({ sub: 'alice', channels: ['dc:*'] }) },
      transports: ['websocket'],
      forceNew: true,
      reconnectionDelay: 20,
      reconnectionDelayMax: 40,
    });
    open.push(stock);
    await until(() => stock.connected, 5000, 'the stock client');
    expect(await stock.timeout(5000).emitWithAck('join', { channel: 'dc:room' })).toMatchObject({
      ok: true,
    });
    // A Phoenix-protocol connection of the same user on the third node.
    const phoenix = await rawConnect(
      `${wsUrl(n2)}/websocket?token=${await token({ sub: 'alice', channels: ['dc:*'] })}&vsn=2.0.0`,
    );
    open.push({ close: () => phoenix.ws.close() });
    phoenix.send(['1', '1', 'dc:room', 'phx_join', {}]);
    expect((await phoenix.reply('1')).status).toBe('ok');
    const bob = await socketOf(n1, 'bob', ['dc:room']);

    const ends = [...alice.map((c) => watchEnd(c.socket)), watchEnd(stock)];
    const answer = await disconnectUser(n1, 'alice');
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ disconnected: 5 });

    await until(() => ends.every((e) => e.reason !== undefined), 5000, 'every socket of alice');
    for (const end of ends) {
      // Told why first, then a server-side disconnect (which Socket.IO clients do not retry).
      expect(end.errors).toEqual([
        { code: 'disconnected', message: errorCatalogue.disconnected.message },
      ]);
      expect(end.reason).toBe('io server disconnect');
    }
    // Every topic closed (phx_close with its join_ref), then a normal closure.
    expect(await phoenix.closed).toEqual({ code: 1000, reason: 'disconnected' });
    expect(phoenix.frames).toContainEqual([
      '1',
      '1',
      'dc:room',
      'phx_close',
      { reason: 'disconnected' },
    ]);

    await sleep(300); // well past the stock client's reconnection delay
    expect(stock.connected).toBe(false);
    expect(stock.active).toBe(false);
    expect(await subscribers(n0, 'dc:room')).toBe(1);
    // Nobody else was touched.
    expect(bob.socket.connected).toBe(true);
    await expectExactly(n2, bob, 'dc:room', 0);
    // Nothing left to close: the action is idempotent.
    expect((await disconnectUser(n2, 'alice')).body).toEqual({ disconnected: 0 });
    expect((await disconnectUser(n2, 'nobody-at-all')).body).toEqual({ disconnected: 0 });
  });

  it('unsubscribe takes the user out of the channel on every node; their other channels and other users stay', async () => {
    const [n0, n1, n2] = cluster.nodes as [TestNode, TestNode, TestNode];
    const carol = [
      await socketOf(n0, 'carol', ['un:a', 'un:b']),
      await socketOf(n2, 'carol', ['un:a', 'un:b']),
      // Not in the channel: not counted, told nothing.
      await socketOf(n1, 'carol', ['un:b']),
    ];
    const dave = await socketOf(n1, 'dave', ['un:a']);
    const ends = carol.map((c) => watchEnd(c.socket));

    const answer = await unsubscribeUser(n2, 'un:a', 'carol');
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ unsubscribed: 2 });
    await until(() => ends[0]!.lefts.length + ends[1]!.lefts.length === 2, 5000, 'both lefts');
    for (const end of ends.slice(0, 2))
      expect(end.lefts).toEqual([{ channel: 'un:a', reason: 'unsubscribed' }]);
    expect(ends[2]!.lefts).toEqual([]);
    expect(await subscribers(n0, 'un:a')).toBe(1);
    expect(await getJson(n0, '/api/channels/un:a/presence')).toMatchObject({
      users: [{ userId: 'dave', connections: 1 }],
    });

    // A push on the channel reaches dave only; carol's sockets still get their other channel.
    // (One publisher: the push and then the sentinel arrive in that order on every node.)
    await push(n0, 'un:a', 'after');
    const sentinel = await push(n0, 'un:b', 'sentinel');
    await dave.waitFor(1);
    for (const c of carol) {
      await until(() => c.messages.some((m) => m.id === sentinel), 5000, 'the sentinel');
      expect(c.messages.map((m) => m.channel)).toEqual(['un:b']);
    }
    expect(carol.every((c) => c.socket.connected)).toBe(true);
    // Idempotent: nothing left to take out.
    expect((await unsubscribeUser(n0, 'un:a', 'carol')).body).toEqual({ unsubscribed: 0 });
    // Joining again is a new, ordinary join.
    expect(await carol[0]!.join('un:a')).toMatchObject({ ok: true });
  });

  it('the SDK does not reconnect after a disconnect and tells the app why', async () => {
    const [n0, , n2] = cluster.nodes as [TestNode, TestNode, TestNode];
    const states: string[] = [];
    const errors: unknown[] = [];
    const client = createClient(n2.url, {
      token: await token({ sub: 'erin', channels: ['sdkd:*'] }),
      transports: ['websocket'],
      // A reconnect would be due within 20 ms.
      backoff: { baseMs: 10, capMs: 20 },
      onError: (e) => errors.push(e),
      onStateChange: (s) => states.push(s),
    });
    open.push(client);
    await new Promise((r) => client.subscribe('sdkd:a', { onJoin: r }));

    expect((await disconnectUser(n0, 'erin')).body).toEqual({ disconnected: 1 });
    await until(() => states.includes('closed'), 5000, 'the client to close');
    expect(states).toEqual(['connecting', 'connected', 'closed']);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(PushcastDisconnectedError);
    expect(errors[0]).toMatchObject({ code: 'disconnected' });
    expect((errors[0] as Error).message).toContain(errorCatalogue.disconnected.message);

    await sleep(300);
    expect(client.socket.connected).toBe(false);
    expect(await subscribers(n0, 'sdkd:a')).toBe(0);
    expect(states).toEqual(['connecting', 'connected', 'closed']);
  });

  it('the SDK ends a subscription a backend unsubscribed, calls onLeft, keeps the others and never rejoins it', async () => {
    const [n0, n1] = cluster.nodes as [TestNode, TestNode, TestNode];
    const client = createClient(n1.url, {
      token: await token({ sub: 'fay', channels: ['sdku:*'] }),
      transports: ['websocket'],
      backoff: { baseMs: 10, capMs: 20 },
    });
    open.push(client);
    const sent: string[] = [];
    client.socket.onAnyOutgoing((event, payload) => {
      if (event === 'join') sent.push((payload as { channel: string }).channel);
    });
    const left: LeftInfo[] = [];
    const got: PushMessage[] = [];
    let joins = 0;
    const kept = client.subscribe('sdku:kept', {
      onJoin: () => (joins += 1),
      onMessage: (m) => got.push(m),
    });
    const gone = client.subscribe('sdku:gone', {
      onJoin: () => (joins += 1),
      onMessage: (m) => got.push(m),
      onLeft: (info) => left.push(info),
    });
    await until(() => joins === 2, 5000, 'both joined');

    expect((await unsubscribeUser(n0, 'sdku:gone', 'fay')).body).toEqual({ unsubscribed: 1 });
    await until(() => left.length > 0, 5000, 'onLeft');
    expect(left).toEqual([{ channel: 'sdku:gone', reason: 'unsubscribed' }]);
    expect(gone.subscribed).toBe(false);
    expect(kept.subscribed).toBe(true);

    sent.length = 0;
    client.socket.io.engine.close(); // the transport drops; the SDK reconnects by itself
    await until(() => joins === 3, 8000, 'the rejoin after the reconnect');
    expect(sent).toEqual(['sdku:kept']);
    await push(n0, 'sdku:gone', 'gone');
    await push(n0, 'sdku:kept', 'kept');
    await until(() => got.length > 0, 5000, 'the push on sdku:kept');
    expect(got.map((m) => m.data)).toEqual(['kept']);
    expect(await subscribers(n0, 'sdku:gone')).toBe(0);
  });

  it('a node that does not answer in time: 503 unavailable with Retry-After, and a retry completes the action', async () => {
    const [n0, , n2] = cluster.nodes as [TestNode, TestNode, TestNode];
    const here = await socketOf(n0, 'gus', ['slow:a']);
    const there = await socketOf(n2, 'gus', ['slow:a']);
    const ends = [watchEnd(here.socket), watchEnd(there.socket)];
    // The third node stalls: it gets the request and never answers it.
    const nsp = n2.server.io.of('/');
    const listeners = nsp.listeners('pushcast:unsubscribe');
    nsp.removeAllListeners('pushcast:unsubscribe');
    try {
      const started = Date.now();
      const answer = await unsubscribeUser(n0, 'slow:a', 'gus');
      expect(answer.status).toBe(503);
      expect(answer.body.code).toBe('unavailable');
      expect(answer.headers.get('retry-after')).toBe('1');
      expect(Date.now() - started).toBeLessThan(8000);
      // Applied where it could be: the asking node's socket is out.
      expect(ends[0]!.lefts).toEqual([{ channel: 'slow:a', reason: 'unsubscribed' }]);
      expect(ends[1]!.lefts).toEqual([]);
    } finally {
      for (const listener of listeners) nsp.on('pushcast:unsubscribe', listener as () => void);
    }
    // The retry finds what is left, and only that.
    expect((await unsubscribeUser(n0, 'slow:a', 'gus')).body).toEqual({ unsubscribed: 1 });
    await until(() => ends[1]!.lefts.length === 1, 5000, 'the left on the third node');
    expect(await subscribers(n0, 'slow:a')).toBe(0);
  }, 20_000);
});
