import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createClient,
  PushcastAuthError,
  PushcastClientError,
  PushcastJoinError,
  PushcastUnavailableError,
  type LeftInfo,
  type PushMessage,
} from '../../src/client/index.js';
import { startRedis, type RedisFixture } from '../support/redis.js';
import { unsubscribeUser } from '../support/control.js';
import { startNginx } from '../support/nginx.js';
import { freePort } from '../support/ports.js';
import { spawnNode } from '../support/process.js';
import {
  API_KEY,
  JWT_SECRET,
  connectClient,
  postJson,
  startNode,
  token,
  type TestNode,
} from '../support/nodes.js';
import { expectExactly, until } from '../support/assertions.js';

/** The channel's subscribers on the server, as the API counts them. */
async function subscribers(node: TestNode, channel: string): Promise<number> {
  const res = await fetch(`${node.url}/api/channels/${encodeURIComponent(channel)}`, {
    headers: { authorization: `Bearer ${API_KEY}` },
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { subscribers: number }).subscribers;
}

/** The channels of the `join`s a client sends, as it sends them. */
function joinsSent(client: {
  socket: { onAnyOutgoing(fn: (...args: unknown[]) => void): unknown };
}) {
  const channels: string[] = [];
  client.socket.onAnyOutgoing((event, payload) => {
    if (event === 'join') channels.push((payload as { channel: string }).channel);
  });
  return channels;
}

describe('client SDK against one node', () => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startNode();
  });
  afterAll(async () => node?.stop());

  it('subscribes, dispatches by event, and stops after unsubscribe', async () => {
    const client = createClient(node.url, {
      token: await token({ sub: 'u', channels: ['sdk:*'] }),
      transports: ['websocket'],
    });
    try {
      const all: PushMessage[] = [];
      const paid: PushMessage[] = [];
      const joined = new Promise((r) => {
        const sub = client.subscribe('sdk:a', { onMessage: (m) => all.push(m), onJoin: r });
        sub.on('invoice.paid', (m) => paid.push(m));
      });
      await joined;
      await postJson(`${node.url}/api/push`, { channel: 'sdk:a', event: 'invoice.paid', data: 1 });
      await postJson(`${node.url}/api/push`, { channel: 'sdk:a', event: 'other', data: 2 });
      await until(() => all.length === 2, 5000, 'two messages');
      expect(paid.map((m) => m.data)).toEqual([1]);
    } finally {
      client.close();
    }
  });

  it('reports a refused token and a refused join as typed errors', async () => {
    const errors: unknown[] = [];
    const bad = createClient(node.url, {
      token: 'nope',
      transports: ['websocket'],
      onError: (e) => errors.push(e),
    });
    try {
      await until(() => errors.length > 0, 5000, 'auth error');
      expect(errors[0]).toBeInstanceOf(PushcastAuthError);
      expect((errors[0] as PushcastAuthError).code).toBe('invalid_token');
    } finally {
      bad.close();
    }
    const client = createClient(node.url, {
      token: await token({ sub: 'u', channels: [] }),
      transports: ['websocket'],
    });
    try {
      const err = await new Promise<unknown>((r) => client.subscribe('secret', { onError: r }));
      expect(err).toBeInstanceOf(PushcastJoinError);
      expect((err as PushcastJoinError).code).toBe('forbidden');
    } finally {
      client.close();
    }
  });

  it('recovers pushes made while it was away, even on a channel that was empty when it joined', async () => {
    const client = createClient(node.url, {
      token: await token({ sub: 'u', channels: ['sdk:*'] }),
      transports: ['websocket'],
    });
    try {
      const got: PushMessage[] = [];
      let joins = 0;
      let lost = 0;
      client.subscribe('sdk:empty', {
        onMessage: (m) => got.push(m),
        onJoin: () => (joins += 1),
        onLost: () => (lost += 1),
      });
      await until(() => joins === 1, 5000, 'first join');
      client.socket.io.engine.close(); // the transport drops; the SDK reconnects by itself
      await until(() => !client.socket.connected, 5000, 'disconnect');
      const ids: string[] = [];
      for (let i = 0; i < 3; i++)
        ids.push(
          (await postJson(`${node.url}/api/push`, { channel: 'sdk:empty', event: 'e', data: i }))
            .body.id as string,
        );
      await until(() => joins === 2 && got.length === 3, 8000, 'rejoin with the missed pushes');
      expect(got.map((m) => m.id)).toEqual(ids);
      expect(lost).toBe(0);
    } finally {
      client.close();
    }
  });

  it('refreshes a short-lived token over the open connection before it expires', async () => {
    let calls = 0;
    const states: string[] = [];
    const client = createClient(node.url, {
      // Tokens good for 3 s: without a refresh the server closes the session at expiry.
      getToken: async () => {
        calls += 1;
        return token({ sub: 'u', channels: ['sdk:*'] }, { exp: Math.floor(Date.now() / 1000) + 3 });
      },
      transports: ['websocket'],
      onStateChange: (s) => states.push(s),
    });
    try {
      const got: PushMessage[] = [];
      await new Promise((r) =>
        client.subscribe('sdk:refresh', { onMessage: (m) => got.push(m), onJoin: r }),
      );
      await new Promise((r) => setTimeout(r, 4500)); // past the first token's expiry
      expect(client.socket.connected).toBe(true);
      expect(states).toEqual(['connecting', 'connected']);
      expect(calls).toBeGreaterThanOrEqual(2);
      await postJson(`${node.url}/api/push`, {
        channel: 'sdk:refresh',
        event: 'e',
        data: 'still here',
      });
      await until(() => got.length === 1, 5000, 'a push after the first expiry');
    } finally {
      client.close();
    }
  });

  it('subscribe then unsubscribe leaves nothing on the server, before the connection or with the join in flight', async () => {
    const client = createClient(node.url, {
      token: await token({ sub: 'u', channels: ['sdk:*'] }),
      transports: ['websocket'],
    });
    // Everything the socket receives, whether a subscription takes it or not.
    const raw: PushMessage[] = [];
    client.socket.on('msg', (m: PushMessage) => raw.push(m));
    try {
      // Not connected yet: nothing is sent, and the connection does not join it.
      client.subscribe('sdk:never').unsubscribe();
      await until(() => client.socket.connected, 5000, 'connect');
      // Connected: the join goes out, the leave right behind it, before any answer.
      client.subscribe('sdk:gone').unsubscribe();
      // A join sent after both is answered after the server handled them.
      await new Promise((r) => client.subscribe('sdk:after', { onJoin: r }));
      expect(await subscribers(node, 'sdk:gone')).toBe(0);
      expect(await subscribers(node, 'sdk:never')).toBe(0);
      for (const channel of ['sdk:gone', 'sdk:never'])
        await postJson(`${node.url}/api/push`, { channel, event: 'e', data: channel });
      const sentinel = await postJson(`${node.url}/api/push`, {
        channel: 'sdk:after',
        event: 'e',
        data: 'sentinel',
      });
      await until(() => raw.some((m) => m.id === sentinel.body.id), 5000, 'the sentinel');
      expect(raw.map((m) => m.channel)).toEqual(['sdk:after']);
    } finally {
      client.close();
    }
  });

  it('ends a subscription the refreshed token no longer allows: onLeft, and no rejoin after a reconnect', async () => {
    let calls = 0;
    const client = createClient(node.url, {
      // The first token (3 s) allows sdk:*, so the SDK refreshes it; every later one only sdk:keep.
      getToken: async () => {
        calls += 1;
        return calls === 1
          ? token({ sub: 'u', channels: ['sdk:*'] }, { exp: Math.floor(Date.now() / 1000) + 3 })
          : token({ sub: 'u', channels: ['sdk:keep'] });
      },
      transports: ['websocket'],
    });
    const sent = joinsSent(client);
    try {
      const left: LeftInfo[] = [];
      const errors: unknown[] = [];
      const got: PushMessage[] = [];
      let keepJoins = 0;
      let dropJoins = 0;
      client.subscribe('sdk:keep', {
        onJoin: () => (keepJoins += 1),
        onMessage: (m) => got.push(m),
      });
      const drop = client.subscribe('sdk:drop', {
        onJoin: () => (dropJoins += 1),
        onLeft: (info) => left.push(info),
        onError: (e) => errors.push(e),
        onMessage: (m) => got.push(m),
      });
      await until(() => keepJoins === 1 && dropJoins === 1, 5000, 'both joined');
      await until(() => left.length > 0, 8000, 'the left after the refresh');
      expect(left).toEqual([{ channel: 'sdk:drop', reason: 'forbidden' }]);
      expect(drop.subscribed).toBe(false);
      expect(await subscribers(node, 'sdk:drop')).toBe(0);
      expect(await subscribers(node, 'sdk:keep')).toBe(1);

      sent.length = 0;
      client.socket.io.engine.close(); // the transport drops; the SDK reconnects by itself
      await until(() => keepJoins === 2, 8000, 'the rejoin after the reconnect');
      expect(sent).toEqual(['sdk:keep']);
      expect(dropJoins).toBe(1);
      await postJson(`${node.url}/api/push`, { channel: 'sdk:drop', event: 'e', data: 'drop' });
      await postJson(`${node.url}/api/push`, { channel: 'sdk:keep', event: 'e', data: 'keep' });
      await until(() => got.length > 0, 5000, 'the push on sdk:keep');
      expect(got.map((m) => m.data)).toEqual(['keep']);
      expect(errors).toEqual([]);
    } finally {
      client.close();
    }
  });

  it('ends a subscription the server unsubscribed (left, reason unsubscribed) the same way', async () => {
    const client = createClient(node.url, {
      token: await token({ sub: 'u', channels: ['sdk:*'] }),
      transports: ['websocket'],
    });
    const sent = joinsSent(client);
    try {
      const left: LeftInfo[] = [];
      let joins = 0;
      const other = client.subscribe('sdk:stay', { onJoin: () => (joins += 1) });
      const sub = client.subscribe('sdk:srv', {
        onJoin: () => (joins += 1),
        onLeft: (info) => left.push(info),
      });
      await until(() => joins === 2, 5000, 'both joined');
      // A server-side unsubscribe (the control API).
      expect((await unsubscribeUser(node, 'sdk:srv', 'u')).status).toBe(200);
      await until(() => left.length > 0, 5000, 'onLeft');
      expect(left).toEqual([{ channel: 'sdk:srv', reason: 'unsubscribed' }]);
      expect(sub.subscribed).toBe(false);
      expect(other.subscribed).toBe(true);

      sent.length = 0;
      client.socket.io.engine.close();
      await until(() => joins === 3, 8000, 'the rejoin after the reconnect');
      expect(sent).toEqual(['sdk:stay']);
      // Subscribing again is a new subscription, joined as usual.
      await new Promise((r) => client.subscribe('sdk:srv', { onJoin: r }));
      expect(await subscribers(node, 'sdk:srv')).toBe(1);
    } finally {
      client.close();
    }
  });

  it('calls getToken again on every reconnect', async () => {
    let calls = 0;
    const client = createClient(node.url, {
      getToken: async () => {
        calls += 1;
        return token({ sub: 'u', channels: ['sdk:*'] });
      },
      transports: ['websocket'],
    });
    try {
      await until(() => client.socket.connected, 5000, 'connect');
      expect(calls).toBe(1);
      client.socket.io.engine.close(); // transport drop: the client reconnects by itself
      await until(() => calls >= 2 && client.socket.connected, 8000, 'reconnect');
    } finally {
      client.close();
    }
  });
});

describe('client SDK reconnect schedule', () => {
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it('backs off while the node is full, reporting node_full, and connects once a slot frees', async () => {
    const node = await startNode({ limits: { maxConnections: 1 } });
    const holder = await connectClient(node.url, {
      token: await token({ sub: 'h', channels: [] }),
    });
    const errors: PushcastClientError[] = [];
    let joins = 0;
    const client = createClient(node.url, {
      token: await token({ sub: 'u', channels: ['sdk:*'] }),
      transports: ['websocket'],
      backoff: { baseMs: 50, capMs: 200 },
      onError: (e) => errors.push(e),
    });
    try {
      client.subscribe('sdk:full', { onJoin: () => (joins += 1) });
      await until(() => errors.length >= 1, 5000, 'the first refusal');
      // Attempts over a window: the server's retryAfterMs is a floor, jitter on top; a client
      // that retried at once would make hundreds.
      const before = errors.length;
      await sleep(2500);
      const attempts = errors.length - before;
      expect(attempts).toBeGreaterThanOrEqual(1);
      expect(attempts).toBeLessThanOrEqual(4);
      expect(client.socket.connected).toBe(false);
      for (const e of errors) {
        expect(e).toBeInstanceOf(PushcastUnavailableError);
        expect(e.code).toBe('node_full');
        expect((e as PushcastUnavailableError).retryAfterMs).toBeGreaterThan(0);
      }

      holder.close();
      await until(() => client.socket.connected && joins === 1, 8000, 'connected once freed');
    } finally {
      client.close();
      holder.close();
      await node.stop();
    }
  });

  it('retries a node it cannot reach on the configured backoff: bounded attempts, never giving up', async () => {
    // Nothing listens there: every attempt is a transport error.
    const port = await freePort();
    const client = createClient(`http://127.0.0.1:${port}`, {
      token: await token({ sub: 'u', channels: [] }),
      transports: ['websocket'],
      backoff: { baseMs: 50, capMs: 200 },
    });
    let attempts = 0;
    client.socket.io.on('error', () => (attempts += 1));
    try {
      await until(() => attempts >= 2, 5000, 'a retry');
      const before = attempts;
      // The attempts of a fixed window are what is measured.
      await sleep(2000);
      const inWindow = attempts - before;
      // At most 200 ms apart, 100 ms on average: ~20 in two seconds. Without backoff it would be
      // hundreds; on Socket.IO's own schedule (1 s, 2 s, ...) one or two.
      expect(inWindow).toBeGreaterThanOrEqual(5);
      expect(inWindow).toBeLessThan(60);
    } finally {
      client.close();
    }
    const closedAt = attempts;
    // "No attempt after close" has no event to wait on: watch for twice the backoff cap.
    await sleep(400);
    expect(attempts).toBe(closedAt);
  });

  it('after recovered:false resumes from the position the join answered: onLost once, not on every later reconnect', async () => {
    // History of 2 messages: 5 pushes while away make a real gap.
    const node = await startNode({ history: { size: 2 } });
    const jwt = await token({ sub: 'u', channels: ['sdk:*'] });
    // While `gate` is pending the client cannot (re)connect: getToken waits for it.
    let gate: Promise<void> = Promise.resolve();
    let open = (): void => {};
    const shut = (): void => {
      gate = new Promise((r) => (open = r));
    };
    const client = createClient(node.url, {
      getToken: async () => {
        await gate;
        return jwt;
      },
      transports: ['websocket'],
      backoff: { baseMs: 20, capMs: 100 },
    });
    const joins: Array<{ recovered?: boolean }> = [];
    const lost: unknown[] = [];
    const got: PushMessage[] = [];
    const away = async (pushes: number): Promise<void> => {
      shut();
      client.socket.io.engine.close();
      await until(() => !client.socket.connected, 5000, 'disconnect');
      for (let i = 0; i < pushes; i++)
        expect(
          (await postJson(`${node.url}/api/push`, { channel: 'sdk:gap', event: 'e', data: i }))
            .status,
        ).toBe(200);
      open();
    };
    try {
      client.subscribe('sdk:gap', {
        onJoin: (info) => joins.push(info),
        onLost: (info) => lost.push(info),
        onMessage: (m) => got.push(m),
      });
      await until(() => joins.length === 1, 5000, 'first join');

      await away(5);
      await until(() => joins.length === 2, 8000, 'the rejoin past the history');
      expect(joins[1]).toMatchObject({ recovered: false });
      expect(lost).toHaveLength(1);

      // Away again, nothing pushed meanwhile: nothing was missed since the answered position.
      await away(0);
      await until(() => joins.length === 3, 8000, 'the second rejoin');
      expect(joins[2]).toMatchObject({ recovered: true, missed: 0 });
      expect(lost).toHaveLength(1);

      // And it still gets what comes next, once.
      await postJson(`${node.url}/api/push`, { channel: 'sdk:gap', event: 'e', data: 'next' });
      await until(() => got.some((m) => m.data === 'next'), 5000, 'the next push');
      expect(got.map((m) => m.data)).toEqual(['next']);
    } finally {
      open();
      client.close();
      await node.stop();
    }
  });
});

describe('client SDK through nginx when its node is SIGKILLed', () => {
  let redis: RedisFixture;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => redis?.stop());

  it('reconnects to another node and misses nothing, repeats nothing', async () => {
    const [portA, portB] = [await freePort(), await freePort()];
    const env = (port: number) => ({
      PORT: String(port),
      HOST: '127.0.0.1',
      REDIS_URL: redis.url,
      PUSHCAST_API_KEYS: API_KEY,
      PUSHCAST_JWT_SECRET: JWT_SECRET,
      LOG_LEVEL: 'info',
      NODE_ENV: 'test',
    });
    await using a = spawnNode({ script: 'src/main.ts', env: env(portA) });
    await using b = spawnNode({ script: 'src/main.ts', env: env(portB) });
    await Promise.all([a.waitForLine(/pushcast ready/), b.waitForLine(/pushcast ready/)]);
    // B is nginx's backup: clients land on A while it lives, and on B after.
    await using lb = await startNginx([{ port: portA }, { port: portB, backup: true }]);

    const received: PushMessage[] = [];
    const lost: unknown[] = [];
    const client = createClient(lb.url, {
      getToken: () => token({ sub: 'u', channels: ['kill:*'] }),
      transports: ['websocket'],
    });
    try {
      await new Promise((r) =>
        client.subscribe('kill:ch', {
          onMessage: (m) => received.push(m),
          onJoin: r,
          onLost: (i) => lost.push(i),
        }),
      );
      const ids: string[] = [];
      const publish = async (i: number) => {
        const res = await postJson(`http://127.0.0.1:${portB}/api/push`, {
          channel: 'kill:ch',
          event: 'n',
          data: i,
        });
        expect(res.status).toBe(200);
        ids.push(res.body.id as string);
      };
      for (let i = 0; i < 20; i++) await publish(i);
      await until(() => received.length === 20, 5000, 'first 20');
      a.kill('SIGKILL');
      await a.exited;
      // Keep publishing while the client is away and while it comes back.
      for (let i = 20; i < 60; i++) {
        await publish(i);
        // Spread over the time the client is away and coming back.
        await new Promise((r) => setTimeout(r, 25));
      }
      await until(() => received.length >= 60, 15_000, 'all 60 after reconnect');
      // Nothing repeated after them either.
      await expectExactly(
        { url: `http://127.0.0.1:${portB}` },
        { messages: received },
        'kill:ch',
        60,
      );
      expect(received.slice(0, 60).map((m) => m.id)).toEqual(ids);
      expect(lost).toEqual([]);
    } finally {
      client.close();
    }
  }, 40_000);
});
