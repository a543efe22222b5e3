import { Socket as NetSocket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { HandshakeInfo } from '../../src/auth/hooks.js';
import { socketIoEndpointDefaults } from '../../src/realtime/socketio-endpoint.js';
import { until } from '../support/assertions.js';
import { captureLog } from '../support/log-capture.js';
import { countWritesTo, metricValue } from '../support/probes.js';
import { refusedUpgrade } from '../support/upgrades.js';
import {
  connectClient,
  postJson,
  socketsOf,
  startNode,
  token,
  type TestNode,
} from '../support/nodes.js';

/**
 * Socket.IO clients on a plain WebSocket, served by pushcast's own endpoint
 * (src/realtime/socketio-endpoint.ts) rather than engine.io. The clients must not see a
 * difference: the same frames, byte for byte once ids, offsets and times are set aside, as
 * engine.io's server sends (compared against a node with `socketDirect: false`), the same
 * heartbeat, and the same limits on what a client may send.
 */

/** A raw WebSocket speaking Socket.IO by hand: every text frame it gets, in order. */
interface Raw {
  ws: WebSocket;
  frames: string[];
  /** Resolves with the next frame matching `test` (already received ones included). */
  next(test: (frame: string) => boolean, what: string): Promise<string>;
  closed: Promise<number>;
  send(frame: string | Buffer): void;
}

function openRaw(
  node: TestNode,
  query = 'EIO=4&transport=websocket',
  headers: Record<string, string> = {},
  protocols: string[] = [],
): Promise<Raw> {
  const ws = new WebSocket(`ws://127.0.0.1:${node.port}/socket.io/?${query}`, protocols, {
    headers,
  });
  const frames: string[] = [];
  let seen = 0;
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  ws.on('message', (data: Buffer, isBinary) =>
    frames.push(isBinary ? '<binary>' : data.toString()),
  );
  ws.on('error', () => {});
  const raw: Raw = {
    ws,
    frames,
    closed,
    send: (frame) => ws.send(frame),
    next: async (test, what) => {
      const frame = await until(
        () => {
          const at = frames.findIndex((f, i) => i >= seen && test(f));
          if (at === -1) return undefined;
          seen = at + 1;
          return frames[at];
        },
        5000,
        what,
      );
      return frame;
    },
  };
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(raw));
    ws.once('error', reject);
  });
}

/** A frame with the values that differ from run to run (ids, offsets, times) replaced. */
function normalized(frame: string): string {
  return frame
    .replace(/"sid":"[^"]+"/g, '"sid":"<sid>"')
    .replace(/"id":"[^"]+"/g, '"id":"<id>"')
    .replace(/"offset":"[^"]+"/g, '"offset":"<offset>"')
    .replace(/"ts":\d+/g, '"ts":<ts>');
}

/**
 * The same conversation, frame by frame, with any Socket.IO server; `connected` runs once the
 * namespace is connected.
 */
async function conversation(node: TestNode, connected?: () => void): Promise<string[]> {
  const good = await token({ sub: 'talker', channels: ['talk:a'] });
  const raw = await openRaw(node);
  const sent: string[] = [];
  const exchange = async (frame: string, answer: (f: string) => boolean, what: string) => {
    raw.send(frame);
    sent.push(normalized(await raw.next(answer, what)));
  };
  sent.push(normalized(await raw.next((f) => f.startsWith('0'), 'the open packet')));
  await exchange(
    `40${JSON.stringify({ token: 'not-a-jwt' })}`,
    (f) => f.startsWith('44'),
    'refused',
  );
  await exchange('40/admin,', (f) => f.startsWith('44/admin'), 'invalid namespace');
  await exchange(`40${JSON.stringify({ token: good })}`, (f) => f.startsWith('40'), 'connected');
  connected?.();
  await exchange('421["join",{"channel":"talk:a"}]', (f) => f.startsWith('431'), 'join answer');
  await exchange('422["join",{"channel":"talk:b"}]', (f) => f.startsWith('432'), 'forbidden');
  await exchange('423["no-such-event",1]', (f) => f.startsWith('433'), 'unknown event');
  await exchange('424["join"]', (f) => f.startsWith('434'), 'join without payload');
  await exchange('425["leave",{"channel":"talk:a"},"extra"]', (f) => f.startsWith('435'), 'leave');
  await exchange('426["join",{"channel":"talk:a"}]', (f) => f.startsWith('436'), 'join again');
  await exchange('428[7,"seven"]', (f) => f.startsWith('438'), 'an event named by a number');
  // A binary event: one attachment in the payload's place, sent as a binary frame.
  raw.send('451-7["join",{"_placeholder":true,"num":0}]');
  raw.send(Buffer.from('talk:a'));
  sent.push(normalized(await raw.next((f) => f.startsWith('437'), 'binary join answer')));
  // A push reaches it as an event without acknowledgement.
  const pushed = await postJson(`${node.url}/api/push`, {
    channel: 'talk:a',
    event: 'said',
    data: { text: 'hello', n: [1, 2] },
  });
  expect(pushed.status).toBe(200);
  sent.push(normalized(await raw.next((f) => f.startsWith('42["msg"'), 'the push')));
  // A client disconnect leaves the WebSocket to the client; a new connect is a new socket.
  raw.send('41');
  await until(async () => (await socketsOf(node)) === 0, 5000, 'the namespace left');
  await exchange(`40${JSON.stringify({ token: good })}`, (f) => f.startsWith('40'), 'again');
  raw.ws.close();
  await raw.closed;
  return sent;
}

describe('Socket.IO on a plain WebSocket', () => {
  let direct: TestNode;
  let engine: TestNode;
  beforeAll(async () => {
    direct = await startNode();
    engine = await startNode({ socketDirect: false });
  });
  afterAll(async () => {
    await Promise.allSettled([direct?.stop(), engine?.stop()]);
  });

  it('speaks exactly as engine.io and Socket.IO do: the same frames for the same conversation', async () => {
    // Which server answered: the direct endpoint (no engine.io socket), then engine.io.
    const ours = await conversation(direct, () =>
      expect(direct.server.io.of('/').sockets.size).toBe(0),
    );
    const theirs = await conversation(engine, () =>
      expect(engine.server.io.of('/').sockets.size).toBe(1),
    );
    expect(ours).toEqual(theirs);
    // And what they are, for a reader.
    expect(ours[0]).toBe(
      '0{"sid":"<sid>","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}',
    );
    expect(ours[1]).toMatch(/^44\{"message":"unauthorized","data":\{"code":"[a-z_]+"\}\}$/);
    expect(ours[2]).toBe('44/admin,{"message":"Invalid namespace"}');
    expect(ours[3]).toBe('40{"sid":"<sid>"}');
    expect(ours.at(-2)).toBe(
      '42["msg",{"channel":"talk:a","event":"said","data":{"text":"hello","n":[1,2]},"id":"<id>","ts":<ts>,"offset":"<offset>"}]',
    );
  });

  it('serves socket.io-client: ids of 20 characters, one per connect, and pushes', async () => {
    const jwt = await token({ sub: 'sio', channels: ['sio:*'] });
    const a = await connectClient(direct.url, { token: jwt });
    const b = await connectClient(direct.url, { token: jwt });
    try {
      expect(a.socket.id).toMatch(/^[A-Za-z0-9_-]{20}$/);
      expect(a.socket.id).not.toBe(b.socket.id);
      await a.join('sio:x');
      await b.join('sio:x');
      expect(await socketsOf(direct)).toBe(2);
      // Both on the direct endpoint, none on engine.io.
      expect(direct.server.io.of('/').sockets.size).toBe(0);
      const res = await postJson(`${direct.url}/api/push`, {
        channel: 'sio:x',
        event: 'e',
        data: 1,
      });
      expect(res.status).toBe(200);
      for (const c of [a, b]) expect((await c.waitFor(1))[0]).toMatchObject({ id: res.body.id });
    } finally {
      a.close();
      b.close();
    }
  });

  it("leaves a rejoin's replayed messages and its answer in one write", async () => {
    const jwt = await token({ sub: 'replay', channels: ['sio:*'] });
    const first = await connectClient(direct.url, { token: jwt });
    const since = (await first.join('sio:replay')).offset as string;
    first.close();
    for (let n = 0; n < 5; n++) {
      const res = await postJson(`${direct.url}/api/push`, {
        channel: 'sio:replay',
        event: 'e',
        data: n,
      });
      expect(res.status).toBe(200);
    }
    const raw = await openRaw(direct);
    await raw.next((f) => f.startsWith('0'), 'the open packet');
    raw.send(`40${JSON.stringify({ token: jwt })}`);
    await raw.next((f) => f.startsWith('40'), 'connected');
    // The writes of the server's end of this WebSocket (its peer port is the client's own).
    const writes = countWritesTo((raw.ws as unknown as { _socket: NetSocket })._socket.localPort!);
    try {
      raw.send(`421["join",${JSON.stringify({ channel: 'sio:replay', since })}]`);
      const answer = await raw.next((f) => f.startsWith('431'), 'the join answer');
      expect(answer).toContain('"missed":5');
      expect(raw.frames.filter((f) => f.startsWith('42["msg"'))).toHaveLength(5);
    } finally {
      writes.stop();
      raw.ws.close();
    }
    expect(writes.count).toBe(1);
  });

  it('closes a frame no Socket.IO server would read, and anything before the connect', async () => {
    const cases = [
      'garbage',
      '4',
      '49',
      '42["join"', // not JSON
      '42{"join":1}', // not an array
      '421-["join",{}]', // attachments on a plain event are not read as such
      '42["disconnect"]', // a name Socket.IO keeps for itself
      '42[]', // no name
      '457-["join",{"_placeholder":true,"num":0}]', // a binary frame that never comes, then text
    ];
    for (const frame of cases) {
      const raw = await openRaw(direct);
      await raw.next((f) => f.startsWith('0'), 'open');
      raw.send(`40${JSON.stringify({ token: await token({ sub: 'p', channels: [] }) })}`);
      await raw.next((f) => f.startsWith('40'), 'connected');
      raw.send(frame);
      if (frame.startsWith('45')) raw.send('42["leave",{}]');
      expect(await raw.closed, frame).toBe(1000);
    }
    // An event before namespace `/` is connected.
    const early = await openRaw(direct);
    await early.next((f) => f.startsWith('0'), 'open');
    early.send('421["join",{"channel":"x"}]');
    expect(await early.closed).toBe(1000);
    // A binary frame nobody announced.
    const stray = await openRaw(direct);
    await stray.next((f) => f.startsWith('0'), 'open');
    stray.send(Buffer.from([1, 2, 3]));
    expect(await stray.closed).toBe(1000);
    expect(await socketsOf(direct)).toBe(0);
  });

  it('leaves long-polling and upgrades to engine.io', async () => {
    const jwt = await token({ sub: 'poll', channels: ['poll:a'] });
    const upgraded = await connectClient(
      direct.url,
      { token: jwt },
      { transports: ['polling', 'websocket'] },
    );
    try {
      await until(() => upgraded.socket.io.engine.transport.name === 'websocket', 5000, 'upgrade');
      await upgraded.join('poll:a');
      // engine.io's socket, counted with the others.
      expect(direct.server.io.of('/').sockets.size).toBe(1);
      expect(await socketsOf(direct)).toBe(1);
      const res = await postJson(`${direct.url}/api/push`, {
        channel: 'poll:a',
        event: 'e',
        data: 2,
      });
      expect((await upgraded.waitFor(1))[0]).toMatchObject({ id: res.body.id });
    } finally {
      upgraded.close();
    }
  });
});

describe('Socket.IO on a plain WebSocket: what a client cannot do', () => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startNode();
  });
  afterAll(async () => node?.stop());

  /** A raw socket with namespace `/` connected. */
  async function connected(sub = 'hostile', channels: string[] = []): Promise<Raw> {
    const raw = await openRaw(node);
    await raw.next((f) => f.startsWith('0'), 'open');
    raw.send(`40${JSON.stringify({ token: await token({ sub, channels }) })}`);
    await raw.next((f) => f.startsWith('40'), 'connected');
    return raw;
  }

  it('a binary packet nested past any event: the connection is closed, the node keeps serving', async () => {
    const raw = await connected();
    const depth = 100_000;
    raw.send(`451-9["join",${'['.repeat(depth)}{"_placeholder":true,"num":0}${']'.repeat(depth)}]`);
    raw.send(Buffer.from('x'));
    expect(await raw.closed).toBe(1000);
    expect((await fetch(`${node.url}/healthz`)).status).toBe(200);
    const after = await connected();
    after.send('421["join",{"channel":"pub:x"}]');
    expect(await after.next((f) => f.startsWith('431'), 'an answer')).toContain('"ok":false');
    after.ws.close();
  });

  it('a frame over 1,000,000 bytes (engine.io maxHttpBufferSize) closes the connection with 1009', async () => {
    const raw = await connected();
    raw.send(`42["join",{"channel":"${'x'.repeat(1_000_000)}"}]`);
    expect(await raw.closed).toBe(1009);
    // One just under it is read (and answered).
    const fits = await connected();
    fits.send(`421["join",{"channel":"${'x'.repeat(999_900)}"}]`);
    expect(await fits.next((f) => f.startsWith('431'), 'the answer')).toContain('"ok":false');
    fits.ws.close();
  });

  it('attachments: none, more than ten, or before the connect close the connection', async () => {
    for (const frame of ['450-["join",{}]', '4511-["join",{"_placeholder":true,"num":0}]']) {
      const raw = await connected();
      raw.send(frame);
      expect(await raw.closed, frame).toBe(1000);
    }
    // Before namespace `/` is connected nothing is held for a binary packet.
    const early = await openRaw(node);
    await early.next((f) => f.startsWith('0'), 'open');
    early.send('451-["join",{"_placeholder":true,"num":0}]');
    expect(await early.closed).toBe(1000);
  });

  it('a refresh still running when the client reconnects the namespace does not touch the new session', async () => {
    const raw = await connected('again', []);
    // The refresh's token expires in 2 s; the new session's in an hour.
    const short = await token({ sub: 'again', channels: [] }, { exp: '2s' });
    const long = await token({ sub: 'again', channels: [] });
    // One write: refresh, disconnect, connect again, handled in that order.
    raw.send(`421["refresh",${JSON.stringify({ token: short })}]`);
    raw.send('41');
    raw.send(`40${JSON.stringify({ token: long })}`);
    await raw.next((f) => f.startsWith('40'), 'connected again');
    await new Promise((r) => setTimeout(r, 3000));
    expect(raw.frames.filter((f) => f.includes('token_expired'))).toEqual([]);
    expect(raw.ws.readyState).toBe(WebSocket.OPEN);
    raw.send('422["join",{"channel":"x"}]');
    await raw.next((f) => f.startsWith('432'), 'still served');
    raw.ws.close();
  });
});

describe('Socket.IO on a plain WebSocket: refused upgrades', () => {
  /** The HTTP answer to a WebSocket upgrade that is refused: status and body. */
  const refusal = async (node: TestNode, origin?: string) => {
    const url = `ws://127.0.0.1:${node.port}/socket.io/?EIO=4&transport=websocket`;
    const { status, text } = await refusedUpgrade(url, { origin });
    return { status, body: text };
  };

  it('answers a browser origin not allowed as engine.io does: 400 with the reason', async () => {
    const config = { corsOrigins: ['https://good.example'] };
    const direct = await startNode(config);
    const engine = await startNode({ ...config, socketDirect: false });
    try {
      const answer = await refusal(direct, 'https://evil.example');
      expect(answer).toEqual({ status: 400, body: 'origin not allowed' });
      expect(await refusal(engine, 'https://evil.example')).toEqual(answer);
    } finally {
      await Promise.allSettled([direct.stop(), engine.stop()]);
    }
  });
});

describe('Socket.IO on a plain WebSocket: the handshake a refresh sees', () => {
  it("is the connect's, without the connect's token and the WebSocket handshake's own headers", async () => {
    const seen: HandshakeInfo[] = [];
    const node = await startNode(
      {},
      {
        authenticateSocket: (handshake, defaults) => {
          seen.push(structuredClone(handshake));
          return defaults.authenticateSocket(handshake);
        },
      },
    );
    try {
      const first = await token({ sub: 'keeper', channels: [] });
      const second = await token({ sub: 'keeper', channels: [], n: 2 });
      const raw = await openRaw(node, 'EIO=4&transport=websocket&app=demo', { 'x-app': 'demo' }, [
        'pushcast.v1',
      ]);
      raw.send(`40${JSON.stringify({ token: first, device: 'phone' })}`);
      await raw.next((f) => f.startsWith('40'), 'connected');
      raw.send(`421["refresh",${JSON.stringify({ token: second })}]`);
      expect(await raw.next((f) => f.startsWith('431'), 'refreshed')).toBe('431[{"ok":true}]');
      raw.ws.close();
      const [connect, refresh] = seen;
      expect(connect!.auth).toEqual({ token: first, device: 'phone' });
      expect(connect!.headers['sec-websocket-key']).toBeDefined();
      expect(connect!.headers['sec-websocket-protocol']).toBe('pushcast.v1');
      expect(refresh!.auth).toEqual({ token: second, device: 'phone' });
      expect(refresh!.query).toEqual(connect!.query);
      expect(refresh!.address).toBe(connect!.address);
      const kept = Object.fromEntries(
        Object.entries(connect!.headers).filter(
          ([name]) =>
            name !== 'connection' && name !== 'upgrade' && !name.startsWith('sec-websocket-'),
        ),
      );
      expect(refresh!.headers).toEqual(kept);
      expect(refresh!.headers['x-app']).toBe('demo');
    } finally {
      await node.stop();
    }
  });
});

describe('Socket.IO on a plain WebSocket: stopping', () => {
  it('a client that never answers the close is cut after the grace period, not waited for', async () => {
    const node = await startNode({ shutdown: { disconnect: true, disconnectSpreadMs: 0 } });
    const raw = await openRaw(node);
    await raw.next((f) => f.startsWith('0'), 'open');
    raw.send(`40${JSON.stringify({ token: await token({ sub: 'mute', channels: [] }) })}`);
    await raw.next((f) => f.startsWith('40'), 'connected');
    // It stops reading: the close frame is never read, never answered.
    (raw.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const started = Date.now();
    await node.stop();
    // ws itself would wait 30 s for the close handshake.
    expect(Date.now() - started).toBeLessThan(15_000);
    raw.ws.terminate();
  }, 40_000);

  it('clients that answer the close are not waited for past it: the grace period is a bound, not a wait', async () => {
    const saved = socketIoEndpointDefaults.closeGraceMs;
    socketIoEndpointDefaults.closeGraceMs = 10_000;
    try {
      const node = await startNode({ shutdown: { disconnect: true, disconnectSpreadMs: 0 } });
      const client = await connectClient(node.url, {
        token: await token({ sub: 'k', channels: [] }),
      });
      const started = Date.now();
      await node.stop();
      // The client answered the close at once; a stop that sat out the grace period takes 10 s.
      expect(Date.now() - started).toBeLessThan(5000);
      client.close();
    } finally {
      socketIoEndpointDefaults.closeGraceMs = saved;
    }
  }, 40_000);
});

describe('Socket.IO on a plain WebSocket: heartbeat and connect timeout', () => {
  const saved = { ...socketIoEndpointDefaults };
  let node: TestNode | undefined;
  afterEach(async () => {
    Object.assign(socketIoEndpointDefaults, saved);
    await node?.stop();
    node = undefined;
  });

  it('pings every interval; a client that answers stays, one that does not is closed', async () => {
    socketIoEndpointDefaults.pingIntervalMs = 500;
    node = await startNode();
    const jwt = await token({ sub: 'beat', channels: [] });
    const answering = await openRaw(node);
    const silent = await openRaw(node);
    for (const raw of [answering, silent]) {
      await raw.next((f) => f.startsWith('0'), 'open');
      expect(JSON.parse(raw.frames[0]!.slice(1))).toMatchObject({ pingInterval: 500 });
      raw.send(`40${JSON.stringify({ token: jwt })}`);
      await raw.next((f) => f.startsWith('40'), 'connected');
    }
    answering.ws.on('message', (data: Buffer) => {
      if (data.toString() === '2') answering.send('3');
    });
    await silent.next((f) => f === '2', 'a ping');
    // Not answered by the next visit: closed ("ping timeout").
    expect(await silent.closed).toBe(1000);
    await until(() => answering.frames.filter((f) => f === '2').length >= 4, 5000, 'four pings');
    expect(answering.ws.readyState).toBe(WebSocket.OPEN);
    expect(await socketsOf(node)).toBe(1);
    answering.ws.close();
  });

  it('closes a WebSocket whose namespace is not connected within the connect timeout', async () => {
    socketIoEndpointDefaults.pingIntervalMs = 250;
    socketIoEndpointDefaults.connectTimeoutMs = 300;
    node = await startNode();
    const raw = await openRaw(node);
    // It answers pings, but never connects namespace `/`.
    raw.ws.on('message', (data: Buffer) => {
      if (data.toString() === '2') raw.send('3');
    });
    const started = Date.now();
    expect(await raw.closed).toBe(1000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
  });
});

describe('Socket.IO on a plain WebSocket: a slow consumer', () => {
  it('is cut off alone once its unsent output passes the limit; the others get every push', async () => {
    const { logger, lines } = captureLog();
    const node = await startNode({ limits: { maxSocketBufferKb: 64 } }, undefined, { logger });
    const jwt = await token({ sub: 'slow', channels: ['slow:d'] });
    const fast = await connectClient(node.url, { token: jwt });
    const slow = await openRaw(node);
    try {
      await fast.join('slow:d');
      await slow.next((f) => f.startsWith('0'), 'open');
      slow.send(`40${JSON.stringify({ token: jwt })}`);
      const slowId = JSON.parse((await slow.next((f) => f.startsWith('40'), 'connected')).slice(2))
        .sid as string;
      slow.send('421["join",{"channel":"slow:d"}]');
      await slow.next((f) => f.startsWith('431'), 'joined');
      // It stops reading: the kernel's buffers fill, then the node's.
      (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
      const pad = 'x'.repeat(60_000);
      let pushed = 0;
      while (lines.every((l) => l.conn !== slowId)) {
        expect(pushed).toBeLessThan(400);
        const res = await postJson(`${node.url}/api/push`, {
          channel: 'slow:d',
          event: 'bulk',
          data: { i: pushed, pad },
        });
        expect(res.status).toBe(200);
        pushed += 1;
        await fast.waitFor(pushed, 30_000);
      }
      const warned = lines.filter((l) => l.conn === slowId);
      expect(warned).toHaveLength(1);
      expect(warned[0]).toMatchObject({ transport: 'websocket', limit: 64 * 1024 });
      expect(await metricValue(node.url, 'pushcast_slow_consumers_disconnected_total')).toBe(1);
      await until(async () => (await socketsOf(node)) === 1, 5000, 'the slow one gone');
      // The other one is untouched and still served.
      const after = await postJson(`${node.url}/api/push`, {
        channel: 'slow:d',
        event: 'e',
        data: 0,
      });
      expect((await fast.waitFor(pushed + 1)).at(-1)).toMatchObject({ id: after.body.id });
      expect(fast.socket.connected).toBe(true);
    } finally {
      fast.close();
      slow.ws.terminate();
      await node.stop();
    }
  }, 60_000);
});
