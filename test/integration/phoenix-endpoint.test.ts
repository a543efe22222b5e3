import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Socket as NetSocket } from 'node:net';
import WebSocket from 'ws';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import type { ChannelMessage } from '../../src/delivery/message.js';
import { phoenixEndpointDefaults } from '../../src/realtime/phoenix-endpoint.js';
import { createPushServer } from '../../src/server.js';
import { until } from '../support/assertions.js';
import {
  API_KEY,
  JWT_SECRET,
  connectClient,
  postJson,
  startNode,
  token,
  type TestClient,
  type TestNode,
} from '../support/nodes.js';
import { pushex, rawConnect, refusal, wsUrl } from '../support/phoenix.js';
import { countWritesTo } from '../support/probes.js';
import { startRedis, type RedisFixture } from '../support/redis.js';

const push = async (node: TestNode, channel: string, event: string, data: unknown) => {
  const res = await postJson(`${node.url}/api/push`, { channel, event, data });
  expect(res.status).toBe(200);
  return res.body as { id: string };
};

const getJson = async (url: string): Promise<any> => {
  const res = await fetch(url, { headers: { authorization: `Bearer ${API_KEY}` } });
  expect(res.status, url).toBe(200);
  return res.json();
};

/** Pushes to `channel` on `node`; resolves with the push's offset in the channel's history. */
const pushForOffset = async (node: TestNode, channel: string): Promise<string> => {
  const { id } = await push(node, channel, 'm', 0);
  const page = (await getJson(`${node.url}/api/channels/${channel}/history`)) as {
    messages: ChannelMessage[];
  };
  return page.messages.find((m) => m.id === id)!.offset!;
};

const metricsOf = async (node: TestNode): Promise<string> =>
  (await fetch(`${node.url}/metrics`)).text();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('Phoenix endpoint: pushex.js against two nodes on Redis', () => {
  let redis: RedisFixture;
  let a: TestNode;
  let b: TestNode;
  const open: Array<{ close(): unknown }> = [];

  beforeAll(async () => {
    redis = await startRedis();
    a = await startNode({ redisUrl: redis.url });
    b = await startNode({ redisUrl: redis.url });
  });
  afterEach(async () => {
    await Promise.allSettled(open.splice(0).map((c) => c.close()));
  });
  afterAll(async () => {
    await Promise.allSettled([a?.stop(), b?.stop()]);
    await redis?.stop();
  });

  it('subscribes, and gets a push published on the other node as pushex.js delivers it: (data, event)', async () => {
    const client = await pushex(a, { token: await token({ sub: 'p1', channels: ['px:*'] }) });
    open.push(client);
    const joined = await client.subscribe('px:one');
    expect(joined.status).toBe('ok');
    expect(joined.response).toMatchObject({ channel: 'px:one', offset: expect.any(String) });

    await push(b, 'px:one', 'invoice.paid', { amount: 12 });
    await until(() => client.received.length === 1, 5000, 'the push');
    expect(client.received).toEqual([
      { channel: 'px:one', data: { amount: 12 }, event: 'invoice.paid' },
    ]);
  });

  it('a Socket.IO client and a pushex client on one channel get the same push once', async () => {
    const jwt = await token({ sub: 'p2', channels: ['px:*'] });
    const sio: TestClient = await connectClient(b.url, { token: jwt });
    open.push(sio);
    expect(await sio.join('px:both')).toMatchObject({ ok: true });
    const client = await pushex(a, { token: jwt });
    open.push(client);
    expect((await client.subscribe('px:both')).status).toBe('ok');
    // A second pushex client on the node: counted, and handed the very same frame.
    const other = await pushex(a, { token: jwt });
    open.push(other);
    expect((await other.subscribe('px:both')).status).toBe('ok');

    // The frame is encoded once per push on the node: the same buffer reaches every socket.
    const delivered = async () =>
      Number(/^pushcast_pushes_delivered_total (\d+)$/m.exec(await metricsOf(a))?.[1]);
    const deliveredBefore = await delivered();
    // Every WebSocket write in this process (the server's ws sockets; the clients only send
    // joins and heartbeats), passed through.
    const send = vi.spyOn(WebSocket.prototype, 'send');
    let pushed = { id: '' };
    let sent: unknown[] = [];
    try {
      pushed = await push(b, 'px:both', 'hello', { n: 1 });
      await sio.waitFor(1);
      await until(
        () => client.received.length >= 1 && other.received.length >= 1,
        5000,
        'both pushex clients',
      );
      // Anything duplicated would have arrived by the next push's arrival.
      await push(b, 'px:both', 'marker', null);
      await until(() => client.received.length >= 2, 5000, 'the marker');
      await sio.waitFor(2);
      sent = send.mock.calls
        .map(([data]) => data as unknown)
        .filter((data) => Buffer.isBuffer(data) && data.includes('"msg"'));
    } finally {
      send.mockRestore();
    }
    expect(sio.messages.map((m) => m.event)).toEqual(['hello', 'marker']);
    expect(sio.messages[0]).toMatchObject({ id: pushed.id, data: { n: 1 } });
    expect(client.received).toEqual([
      { channel: 'px:both', data: { n: 1 }, event: 'hello' },
      { channel: 'px:both', data: null, event: 'marker' },
    ]);
    expect(other.received).toHaveLength(2);
    expect(sent).toHaveLength(4);
    expect(new Set(sent).size).toBe(2);

    // Counts and presence include the Phoenix connections, across the cluster.
    expect(await getJson(`${b.url}/api/channels/px:both`)).toEqual({
      channel: 'px:both',
      subscribers: 3,
    });
    const presence = await getJson(`${b.url}/api/channels/px:both/presence`);
    expect(presence).toMatchObject({ count: 1, users: [{ userId: 'p2', connections: 3 }] });
    // Two pushes written to the two Phoenix sockets of node A.
    expect((await delivered()) - deliveredBefore).toBe(4);
    // Node A holds the two pushex clients (earlier tests' clients are gone, or going).
    await until(
      async () => {
        const stats = await getJson(`${b.url}/api/stats`);
        const nodeA = stats.nodes.find((n: { id: string }) => n.id === a.server.node);
        return nodeA.sockets === 2 && nodeA.subscriptions === 2;
      },
      3000,
      'node A to count its two Phoenix sockets',
    );
    const metrics = await metricsOf(a);
    expect(metrics).toMatch(/^pushcast_phoenix_sockets_connected 2$/m);
    expect(metrics).toMatch(/^pushcast_sockets_connected 2$/m);
    expect(metrics).toMatch(/^pushcast_channel_subscriptions 2$/m);
  });

  it('50 pushes arrive in order', async () => {
    const client = await pushex(b, { token: await token({ sub: 'p3', channels: ['px:*'] }) });
    open.push(client);
    expect((await client.subscribe('px:order')).status).toBe('ok');
    for (let i = 0; i < 50; i++) await push(a, 'px:order', 'n', { i });
    await until(() => client.received.length === 50, 10_000, '50 pushes');
    expect(client.received.map((m) => (m.data as { i: number }).i)).toEqual([...Array(50).keys()]);
  });

  it('refuses a join the token does not allow: phx_reply error forbidden', async () => {
    const client = await pushex(a, { token: await token({ sub: 'p4', channels: ['px:mine'] }) });
    open.push(client);
    expect(await client.subscribe('px:theirs')).toEqual({
      status: 'error',
      response: { reason: 'forbidden' },
    });
    await push(a, 'px:theirs', 'secret', 1);
    await sleep(200);
    expect(client.received).toEqual([]);
  });

  it('answers a bad token with HTTP 403 and no WebSocket, as Phoenix does', async () => {
    const bad = await token(
      { sub: 'p5' },
      { secret: 'another-secret-0123456789abcdef-0123456789' },
    );
    expect(await refusal(`${wsUrl(a)}/websocket?token=${bad}&vsn=2.0.0`)).toEqual({
      status: 403,
      body: { error: expect.any(String), code: 'invalid_signature' },
    });
    expect((await refusal(`${wsUrl(a)}/websocket?vsn=2.0.0`)).status).toBe(403);
  });

  it('refuses any protocol version but 2.x with a clear 400', async () => {
    const jwt = await token({ sub: 'p6' });
    for (const query of ['vsn=1.0.0', '', 'vsn=3.0.0']) {
      const answer = await refusal(`${wsUrl(a)}/websocket?token=${jwt}&${query}`);
      expect(answer.status).toBe(400);
      expect(answer.body.error).toMatch(/vsn 2\.x/);
    }
  });

  it('answers heartbeats, and a leave, after which nothing more arrives', async () => {
    const raw = await rawConnect(
      `${wsUrl(a)}/websocket?token=${await token({ sub: 'p7', channels: ['px:*'] })}&vsn=2.0.0`,
    );
    open.push({ close: () => raw.ws.close() });
    raw.send([null, '1', 'phoenix', 'heartbeat', {}]);
    expect(await raw.reply('1')).toEqual({ status: 'ok', response: {} });
    expect(raw.frames[0]).toEqual([
      null,
      '1',
      'phoenix',
      'phx_reply',
      { status: 'ok', response: {} },
    ]);

    raw.send(['2', '2', 'px:leave', 'phx_join', {}]);
    expect(await raw.reply('2')).toMatchObject({ status: 'ok', response: { channel: 'px:leave' } });
    const first = await push(a, 'px:leave', 'one', { x: 1 });
    const msg = await raw.next((f) => f[3] === 'msg');
    expect(msg).toEqual([
      null,
      null,
      'px:leave',
      'msg',
      {
        event: 'one',
        data: { x: 1 },
        id: first.id,
        ts: expect.any(Number),
        offset: expect.any(String),
      },
    ]);

    raw.send(['2', '3', 'px:leave', 'phx_leave', {}]);
    expect(await raw.reply('3')).toEqual({ status: 'ok', response: {} });
    expect(raw.frames.at(-1)).toEqual([
      '2',
      '3',
      'px:leave',
      'phx_reply',
      { status: 'ok', response: {} },
    ]);
    await push(a, 'px:leave', 'two', {});
    raw.send([null, '4', 'phoenix', 'heartbeat', {}]);
    await raw.reply('4');
    await sleep(200);
    expect(raw.frames.filter((f) => f[3] === 'msg')).toHaveLength(1);
    expect(await getJson(`${a.url}/api/channels/px:leave`)).toMatchObject({ subscribers: 0 });
  });

  it('pushex.js unsubscribe leaves the channel', async () => {
    const client = await pushex(a, { token: await token({ sub: 'p8', channels: ['px:*'] }) });
    open.push(client);
    expect((await client.subscribe('px:unsub')).status).toBe('ok');
    expect(await getJson(`${b.url}/api/channels/px:unsub`)).toMatchObject({ subscribers: 1 });
    await client.client.unsubscribe('px:unsub');
    await until(
      async () => (await getJson(`${b.url}/api/channels/px:unsub`)).subscribers === 0,
      5000,
      'the leave to count',
    );
  });

  it('recovers with `since` in the join payload: history first, then live, no gap', async () => {
    const jwt = await token({ sub: 'p9', channels: ['px:*'] });
    const since = await pushForOffset(a, 'px:recover');
    await push(b, 'px:recover', 'm', 1);
    await push(b, 'px:recover', 'm', 2);
    const raw = await rawConnect(`${wsUrl(b)}/websocket?token=${jwt}&vsn=2.0.0`);
    open.push({ close: () => raw.ws.close() });
    raw.send(['1', '1', 'px:recover', 'phx_join', { since }]);
    expect(await raw.reply('1')).toMatchObject({
      status: 'ok',
      response: { channel: 'px:recover', recovered: true, missed: 2 },
    });
    await push(a, 'px:recover', 'm', 3);
    await until(() => raw.frames.filter((f) => f[3] === 'msg').length === 3, 5000, '3 messages');
    expect(
      raw.frames.filter((f) => f[3] === 'msg').map((f) => (f[4] as { data: number }).data),
    ).toEqual([1, 2, 3]);
  });

  it("leaves a rejoin's replayed messages and its reply in one write", async () => {
    const jwt = await token({ sub: 'p9w', channels: ['px:*'] });
    const since = await pushForOffset(a, 'px:replay');
    for (let n = 1; n <= 5; n++) await push(a, 'px:replay', 'm', n);
    const raw = await rawConnect(`${wsUrl(a)}/websocket?token=${jwt}&vsn=2.0.0`);
    open.push({ close: () => raw.ws.close() });
    // The writes of the server's end of this WebSocket (its peer port is the client's own).
    const writes = countWritesTo((raw.ws as unknown as { _socket: NetSocket })._socket.localPort!);
    try {
      raw.send(['1', '1', 'px:replay', 'phx_join', { since }]);
      expect(await raw.reply('1')).toMatchObject({ status: 'ok', response: { missed: 5 } });
      expect(raw.frames.filter((f) => f[3] === 'msg')).toHaveLength(5);
    } finally {
      writes.stop();
    }
    expect(writes.count).toBe(1);
  });

  it('answers junk with an error reply or a close with a reason, and keeps serving everyone else', async () => {
    const jwt = await token({ sub: 'p10', channels: ['px:*'] });
    const url = `${wsUrl(a)}/websocket?token=${jwt}&vsn=2.0.0`;
    const witness = await pushex(a, { token: jwt });
    open.push(witness);
    expect((await witness.subscribe('px:junk')).status).toBe('ok');

    // Frames that can be read: each answered with an error, the connection stays.
    const raw = await rawConnect(url);
    open.push({ close: () => raw.ws.close() });
    raw.send(['1', '1', 'px:junk', 'phx_join', {}]);
    expect((await raw.reply('1')).status).toBe('ok');
    const answers = [
      [['1', '2', 'px:junk', 'shout', {}], { reason: 'invalid_request' }],
      [[null, '3', 'px:elsewhere', 'shout', {}], { reason: 'unmatched topic' }],
      [[null, '4', 'phoenix', 'shout', {}], { reason: 'unmatched topic' }],
      [['5', '5', 'px:junk2', 'phx_join', 'not an object'], { reason: 'invalid_request' }],
      [['6', '6', 'bad channel!', 'phx_join', {}], { reason: 'invalid_channel' }],
      [['7', '7', 'px:junk3', 'phx_join', { since: 12 }], { reason: 'invalid_request' }],
      [['8', '8', 'x'.repeat(201), 'phx_leave', {}], { reason: 'invalid_channel' }],
    ] as const;
    for (const [frame, response] of answers) {
      raw.send(frame);
      expect(await raw.reply(frame[1])).toEqual({ status: 'error', response });
    }
    raw.send([null, '9', 'phoenix', 'heartbeat', {}]);
    expect((await raw.reply('9')).status).toBe('ok');

    // Frames that cannot be: the connection is closed with the reason.
    const closes: Array<[unknown, number, RegExp]> = [
      ['not json', 1007, /not JSON/],
      [
        JSON.stringify(['1', '2', 'px:junk']),
        1007,
        /expected \[join_ref, ref, topic, event, payload\]/,
      ],
      [JSON.stringify({ topic: 'px:junk' }), 1007, /expected/],
      [JSON.stringify([{}, '1', 'px:junk', 'phx_join', {}]), 1007, /join_ref and ref/],
      [JSON.stringify([null, '1', 7, 'phx_join', {}]), 1007, /topic and event/],
      [Buffer.from([1, 2, 3]), 1003, /binary/],
      // Over the frame limit: ws closes it (1009) before reading it.
      [JSON.stringify([null, '1', 'px:junk', 'x', 'y'.repeat(70 * 1024)]), 1009, /^/],
    ];
    for (const [frame, code, reason] of closes) {
      const victim = await rawConnect(url);
      if (Buffer.isBuffer(frame)) victim.ws.send(frame, { binary: true });
      else victim.send(frame);
      const closed = await victim.closed;
      expect(closed.code, String(frame).slice(0, 40)).toBe(code);
      expect(closed.reason).toMatch(reason);
    }

    // Everyone else is still served.
    await push(b, 'px:junk', 'still', 'here');
    await until(() => witness.received.length === 1, 5000, 'the witness push');
    expect(witness.received[0]).toEqual({ channel: 'px:junk', data: 'here', event: 'still' });
    expect(raw.frames.filter((f) => f[3] === 'msg')).toHaveLength(1);
    await until(
      async () => (await getJson(`${a.url}/api/stats`)).nodes[0].sockets === 2,
      5000,
      'the closed ones to be gone',
    );
  });

  it('a second join of a joined topic closes the earlier join, as Phoenix does', async () => {
    const raw = await rawConnect(
      `${wsUrl(a)}/websocket?token=${await token({ sub: 'p11', channels: ['px:*'] })}&vsn=2.0.0`,
    );
    open.push({ close: () => raw.ws.close() });
    raw.send(['1', '1', 'px:dup', 'phx_join', {}]);
    expect((await raw.reply('1')).status).toBe('ok');
    raw.send(['2', '2', 'px:dup', 'phx_join', {}]);
    expect((await raw.reply('2')).status).toBe('ok');
    expect(raw.frames).toContainEqual(['1', '1', 'px:dup', 'phx_close', {}]);
    await push(a, 'px:dup', 'once', 1);
    await raw.next((f) => f[3] === 'msg');
    await sleep(200);
    expect(raw.frames.filter((f) => f[3] === 'msg')).toHaveLength(1);
  });

  it('ends unclaimed upgrades (no Socket.IO or Phoenix path) as engine.io did', async () => {
    const started = Date.now();
    const error = await new Promise<Error>((resolve) => {
      const ws = new WebSocket(`${wsUrl(a, '/nope')}/websocket?vsn=2.0.0`);
      ws.on('error', resolve);
      ws.on('open', () => resolve(new Error('opened')));
    });
    expect(error.message).not.toBe('opened');
    expect(Date.now() - started).toBeLessThan(3000);
  });
});

describe('Phoenix endpoint: auth hooks, expiry, heartbeat timeout, limits, drain', () => {
  const nodes: TestNode[] = [];
  const defaults = { ...phoenixEndpointDefaults };
  afterEach(async () => {
    Object.assign(phoenixEndpointDefaults, defaults);
    await Promise.allSettled(nodes.splice(0).map((n) => n.stop()));
  });

  it('runs the authenticateSocket hook with the token and the other query params, even when it takes over 1 s', async () => {
    const seen: Array<{ auth: unknown; query: unknown }> = [];
    const node = await startNode(
      {},
      {
        authenticateSocket: async (handshake, builtIn) => {
          seen.push({ auth: handshake.auth, query: handshake.query });
          await sleep(1500);
          return builtIn.authenticateSocket(handshake);
        },
      },
    );
    nodes.push(node);
    const jwt = await token({ sub: 'h1', channels: ['hk:*'] });
    const client = await pushex(node, { token: jwt, tenant: 'acme' });
    expect((await client.subscribe('hk:a')).status).toBe('ok');
    expect(seen).toEqual([{ auth: { token: jwt }, query: { tenant: 'acme', vsn: '2.0.0' } }]);
    await push(node, 'hk:a', 'e', 1);
    await until(() => client.received.length === 1, 5000, 'the push');
    await client.close();
  });

  it('closes a client that sends no heartbeat for the timeout, and keeps one that does', async () => {
    phoenixEndpointDefaults.heartbeatTimeoutMs = 500;
    const node = await startNode();
    nodes.push(node);
    const jwt = await token({ sub: 'h2', channels: ['hb:*'] });
    const silent = await rawConnect(`${wsUrl(node)}/websocket?token=${jwt}&vsn=2.0.0`);
    const started = Date.now();
    const alive = await pushex(node, { token: jwt }, { heartbeatMs: 100 });
    expect((await alive.subscribe('hb:a')).status).toBe('ok');
    expect(await silent.closed).toEqual({ code: 1008, reason: 'heartbeat timeout' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    await sleep(700);
    expect(alive.client.getSocket().isConnected()).toBe(true);
    await push(node, 'hb:a', 'e', 1);
    await until(() => alive.received.length === 1, 5000, 'the push');
    await alive.close();
  });

  it('closes the connection when its token expires', async () => {
    const node = await startNode({ jwt: { secret: JWT_SECRET } });
    nodes.push(node);
    const raw = await rawConnect(
      `${wsUrl(node)}/websocket?token=${await token({ sub: 'h3' }, { exp: '2s' })}&vsn=2.0.0`,
    );
    expect(await raw.closed).toEqual({ code: 1008, reason: 'token_expired' });
  });

  it('counts Phoenix connections in the per-user limit, both ways', async () => {
    const node = await startNode({ limits: { maxConnectionsPerUser: 2 } });
    nodes.push(node);
    const jwt = await token({ sub: 'h4' });
    const url = `${wsUrl(node)}/websocket?token=${jwt}&vsn=2.0.0`;
    const sio = await connectClient(node.url, { token: jwt });
    const raw = await rawConnect(url);
    expect(await refusal(url)).toEqual({
      status: 503,
      body: { error: expect.any(String), code: 'too_many_user_connections' },
    });
    await expect(connectClient(node.url, { token: jwt })).rejects.toMatchObject({
      message: 'unavailable',
      data: { code: 'too_many_user_connections' },
    });
    raw.ws.close();
    const again = await until(
      () => rawConnect(url).catch(() => undefined),
      3000,
      'a slot once the Phoenix connection closed',
    );
    sio.close();
    again.ws.close();
  });

  it('counts Phoenix connections in the node limit, both ways', async () => {
    const node = await startNode({ limits: { maxConnections: 1 } });
    nodes.push(node);
    const jwt = await token({ sub: 'h5' });
    const raw = await rawConnect(`${wsUrl(node)}/websocket?token=${jwt}&vsn=2.0.0`);
    await expect(connectClient(node.url, { token: jwt })).rejects.toMatchObject({
      data: { code: 'node_full' },
    });
    const answer = await refusal(`${wsUrl(node)}/websocket?token=${jwt}&vsn=2.0.0`);
    expect(answer).toMatchObject({ status: 503, body: { code: 'node_full' } });
    raw.ws.close();
  });

  it('drain: closes Phoenix sockets with the others, spread, at the transport level', async () => {
    const node = await startNode({ shutdown: { disconnect: true, disconnectSpreadMs: 600 } });
    const jwt = await token({ sub: 'h6' });
    const raws = await Promise.all(
      [0, 1, 2].map(() => rawConnect(`${wsUrl(node)}/websocket?token=${jwt}&vsn=2.0.0`)),
    );
    const sio = await connectClient(node.url, { token: jwt });
    const sioClosed = new Promise<number>((r) =>
      sio.socket.once('disconnect', () => r(Date.now())),
    );
    const started = Date.now();
    const stopping = node.server.stop();
    const closes = await Promise.all(
      raws.map(async (raw) => ({ ...(await raw.closed), at: Date.now() - started })),
    );
    for (const c of closes) expect(c).toMatchObject({ code: 1001, reason: 'server shutting down' });
    const times = [...closes.map((c) => c.at), (await sioClosed) - started].sort((x, y) => x - y);
    expect(times.at(-1)! - times[0]!).toBeGreaterThanOrEqual(400);
    await stopping;
  });

  it('is off with an empty phoenixPath, and refuses to start on the Socket.IO path', async () => {
    expect(loadConfig({ PUSHCAST_PHOENIX_PATH: '' }, '/nonexistent').config.phoenixPath).toBe('');
    expect(loadConfig({}, '/nonexistent').config.phoenixPath).toBe('/push_socket');
    for (const phoenixPath of ['/socket.io', '/socket.io/', '/socket.io/pushex'])
      expect(() => createPushServer({ phoenixPath })).toThrow(
        /PUSHCAST_PHOENIX_PATH \(phoenixPath\).*PUSHCAST_SOCKET_PATH \(socketPath\)/,
      );
    expect(() => createPushServer({ phoenixPath: '/live', socketPath: '/live' })).toThrow(
      ConfigError,
    );

    const node = await startNode({ phoenixPath: '' });
    nodes.push(node);
    const error = await new Promise<Error>((resolve) => {
      const ws = new WebSocket(`${wsUrl(node)}/websocket?vsn=2.0.0&token=x`);
      ws.on('error', resolve);
      ws.on('open', () => resolve(new Error('opened')));
    });
    expect(error.message).not.toBe('opened');
    const metrics = await metricsOf(node);
    expect(metrics).not.toContain('pushcast_phoenix_sockets_connected');

    // Any path: pushex.js is given `<origin><phoenixPath>` and appends `/websocket` itself.
    const custom = await startNode({ phoenixPath: '/legacy/push/' });
    nodes.push(custom);
    const client = await pushex(
      { ...custom, url: `${custom.url}/legacy` },
      { token: await token({ sub: 'h7', channels: ['lg:*'] }) },
      { path: '/push' },
    );
    expect((await client.subscribe('lg:a')).status).toBe('ok');
    await client.close();
  });
});
