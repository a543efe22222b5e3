import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { Hooks } from '../../src/auth/hooks.js';
import { until } from '../support/assertions.js';
import {
  connectAs,
  socketsOf,
  startNode,
  token,
  type ConnectRefusal,
  type TestClient,
  type TestNode,
} from '../support/nodes.js';
import { wsUrl } from '../support/phoenix.js';
import { readRefusal } from '../support/upgrades.js';

/**
 * The node's connection limits across its two transports (README "Abuse, slow consumers and
 * storms"; src/realtime/admission.ts): Socket.IO sockets and Phoenix connections hold tickets of
 * one admission, so they share one count (handshakes in progress included), one per-user count
 * and one connect-rate bucket.
 */

/** A Phoenix upgrade: the open WebSocket, or the HTTP refusal (status, JSON body, Retry-After). */
type PhoenixOutcome = { ws: WebSocket } | { status: number; body: any; retryAfter?: string };

async function phoenix(node: TestNode, sub: string): Promise<PhoenixOutcome> {
  const url = `${wsUrl(node)}/websocket?token=${await token({ sub })}&vsn=2.0.0`;
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.on('error', () => {});
    ws.once('open', () => resolve({ ws }));
    ws.once('unexpected-response', (req, res) => {
      void readRefusal(req, res).then(({ status, text, headers }) =>
        resolve({
          status,
          body: text ? JSON.parse(text) : undefined,
          retryAfter: headers['retry-after'],
        }),
      );
    });
  });
}

const isClient = (r: TestClient | ConnectRefusal): r is TestClient => !(r instanceof Error);
const isOpen = (r: PhoenixOutcome): r is { ws: WebSocket } => 'ws' in r;

describe('connection limits across Socket.IO and Phoenix', () => {
  const nodes: TestNode[] = [];
  const clients: TestClient[] = [];
  const sockets: WebSocket[] = [];
  const start = async (limits: Record<string, number>, hooks?: Hooks): Promise<TestNode> => {
    const node = await startNode({ limits }, hooks);
    nodes.push(node);
    return node;
  };
  const keep = <T extends TestClient | ConnectRefusal>(r: T): T => (
    isClient(r) && clients.push(r),
    r
  );
  const keepWs = (r: PhoenixOutcome): PhoenixOutcome => (isOpen(r) && sockets.push(r.ws), r);
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    for (const ws of sockets.splice(0)) ws.terminate();
    await Promise.allSettled(nodes.splice(0).map((n) => n.stop()));
  });

  it('handshakes in progress on both transports at once never take the node past maxConnections', async () => {
    // Every handshake waits in authentication until the test lets them all go: what a slow
    // authenticateSocket hook does under a storm on both transports.
    let holding = true;
    const gates: Array<() => void> = [];
    const hooks: Hooks = {
      authenticateSocket: async (handshake, defaults) => {
        if (holding) await new Promise<void>((r) => gates.push(r));
        return defaults.authenticateSocket(handshake);
      },
    };
    const node = await start({ maxConnections: 2 }, hooks);

    // Two Socket.IO handshakes in authentication fill the node.
    const socketIoAttempts = [connectAs(node, 'a'), connectAs(node, 'b')];
    await until(() => gates.length === 2, 5000, 'two Socket.IO handshakes in authentication');

    // Phoenix upgrades meanwhile: refused at once, before their token is looked at (before the
    // fix they passed the node check, which did not see Socket.IO handshakes, and waited too).
    let settled = 0;
    const phoenixAttempts = [phoenix(node, 'c'), phoenix(node, 'd')].map((p) =>
      p.then((r) => (keepWs(r), (settled += 1), r)),
    );
    await until(
      () => settled === 2 || gates.length === 4,
      5000,
      'the Phoenix upgrades refused, or waiting in authentication',
    );
    // And a third Socket.IO connect is refused too.
    const third = keep(await connectAs(node, 'e'));

    holding = false;
    for (const release of gates.splice(0)) release();
    const socketIoResults = (await Promise.all(socketIoAttempts)).map(keep);
    const phoenixResults = await Promise.all(phoenixAttempts);

    const admitted =
      socketIoResults.filter(isClient).length +
      phoenixResults.filter(isOpen).length +
      (isClient(third) ? 1 : 0);
    expect(admitted).toBe(2);
    expect(socketIoResults.every(isClient)).toBe(true);
    expect(third).toMatchObject({ message: 'unavailable', data: { code: 'node_full' } });
    for (const r of phoenixResults)
      expect(r).toEqual({
        status: 503,
        body: { error: expect.any(String), code: 'node_full', details: { retryAfterMs: 1000 } },
        retryAfter: '1',
      });
  });

  it('a full node answers every Socket.IO connect node_full, and those refusals spend no connect-rate token', async () => {
    const node = await start({ maxConnections: 1, connectRatePerSecond: 2 });
    const first = keep(await connectAs(node, 'a'));
    expect(isClient(first)).toBe(true);

    // Refused for the node being full, every time: not for a rate the refusals themselves spent.
    for (const sub of ['b', 'c', 'd'])
      expect(await connectAs(node, sub)).toMatchObject({
        message: 'unavailable',
        data: { code: 'node_full', retryAfterMs: 1000 },
      });

    // The slot frees: the bucket still holds the token the refusals did not take.
    (first as TestClient).close();
    await until(async () => (await socketsOf(node)) === 0, 5000, 'the disconnect counted');
    expect(isOpen(keepWs(await phoenix(node, 'e')))).toBe(true);
    // And the Phoenix connection counts against the node for Socket.IO.
    expect(await connectAs(node, 'f')).toMatchObject({ data: { code: 'node_full' } });
  });

  it('one connect-rate bucket for both transports: each connect takes one token, whichever its transport', async () => {
    const node = await start({ connectRatePerSecond: 1 });
    expect(isOpen(keepWs(await phoenix(node, 'a')))).toBe(true);
    const refused = keep(await connectAs(node, 'b'));
    expect(refused).toMatchObject({
      message: 'unavailable',
      data: { code: 'connect_rate_limited', retryAfterMs: 1000 },
    });

    // Once the bucket refilled (the wait the refusal named), one Socket.IO connect takes the token
    // and the next Phoenix upgrade finds none.
    await new Promise((r) => setTimeout(r, Number((refused as ConnectRefusal).data?.retryAfterMs)));
    expect(isClient(keep(await connectAs(node, 'b')))).toBe(true);
    expect(keepWs(await phoenix(node, 'c'))).toEqual({
      status: 503,
      body: {
        error: expect.any(String),
        code: 'connect_rate_limited',
        details: { retryAfterMs: 1000 },
      },
      retryAfter: '1',
    });
  });
});
