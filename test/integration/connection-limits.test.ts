import { io, type Socket } from 'socket.io-client';
import { afterEach, describe, expect, it } from 'vitest';
import type { Hooks } from '../../src/auth/hooks.js';
import {
  connectAs,
  connectOrRefusal,
  socketsOf,
  startNode,
  token,
  type ConnectRefusal,
  type TestClient,
  type TestNode,
} from '../support/nodes.js';
import { until } from '../support/assertions.js';

/** Connects and expects a refusal. */
async function refused(
  node: TestNode,
  sub: string,
  auth: Record<string, unknown> = {},
): Promise<ConnectRefusal> {
  const result = await connectAs(node, sub, auth);
  if (!(result instanceof Error)) {
    result.close();
    throw new Error('the socket connected but should have been refused');
  }
  return result;
}

/** Connects and expects success. */
async function accepted(
  node: TestNode,
  sub: string,
  auth: Record<string, unknown> = {},
): Promise<TestClient> {
  const result = await connectAs(node, sub, auth);
  if (result instanceof Error)
    throw new Error(`refused: ${result.message} ${JSON.stringify(result.data)}`);
  return result;
}

/**
 * Opens one socket per token, holds each one's CONNECT until every transport is open, then lets
 * them all go in the same tick: the server sees one burst, however slow the machine is.
 */
async function burst(
  url: string,
  jwts: string[],
  opened: Socket[],
): Promise<Array<Socket | ConnectRefusal>> {
  const held: Array<() => void> = [];
  const sockets = jwts.map((jwt) =>
    io(url, {
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
      // Called once the transport is open; the CONNECT goes out when `cb` is called.
      auth: (cb: (auth: Record<string, unknown>) => void) => held.push(() => cb({ token: jwt })),
    }),
  );
  opened.push(...sockets);
  await until(() => held.length === jwts.length, 10_000, 'every transport open');
  const outcomes = sockets.map(
    (socket) =>
      new Promise<Socket | ConnectRefusal>((resolve) => {
        socket.once('connect', () => resolve(socket));
        socket.once('connect_error', (err: ConnectRefusal) => {
          socket.close();
          resolve(err);
        });
      }),
  );
  for (const send of held) send();
  return Promise.all(outcomes);
}

/** Sockets the node holds, as its stats say. */
const held = (node: TestNode): Promise<number> => socketsOf(node);

describe('connection limits', () => {
  const nodes: TestNode[] = [];
  const clients: TestClient[] = [];
  const start = async (limits: Record<string, number>, hooks?: Hooks): Promise<TestNode> => {
    const node = await startNode({ limits }, hooks);
    nodes.push(node);
    return node;
  };
  const keep = (client: TestClient): TestClient => (clients.push(client), client);
  const sockets: Socket[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    for (const s of sockets.splice(0)) s.close();
    await Promise.allSettled(nodes.splice(0).map((n) => n.stop()));
  });

  it('per node: refuses past maxConnections with node_full before verifying the token, and admits again once a socket leaves', async () => {
    const node = await start({ maxConnections: 3 });
    const first = keep(await accepted(node, 'a'));
    keep(await accepted(node, 'b'));
    keep(await accepted(node, 'c'));

    const refusal = await refused(node, 'd');
    expect(refusal.message).toBe('unavailable');
    expect(refusal.data).toEqual({ code: 'node_full', retryAfterMs: expect.any(Number) });
    expect(refusal.data?.retryAfterMs).toBeGreaterThan(0);
    // The node-wide check runs first: a bad token is not even verified.
    const cheap = await refused(node, 'd', { token: 'not-a-token' });
    expect(cheap.data?.code).toBe('node_full');

    first.close();
    await until(async () => (await held(node)) === 2, 5000, 'the node to count the disconnect');
    // Refusals took no slot: exactly one socket gets in, the next is refused again.
    keep(await accepted(node, 'd'));
    expect((await refused(node, 'e')).data?.code).toBe('node_full');
    expect(await held(node)).toBe(3);
  });

  it('per node: refused and abandoned handshakes hold no slot, handshakes in progress do', async () => {
    // Sockets whose auth carries `hold` wait in authentication until released.
    const gates: Array<() => void> = [];
    const hooks: Hooks = {
      authenticateSocket: async (handshake, defaults) => {
        if (handshake.auth.hold) await new Promise<void>((r) => gates.push(r));
        return defaults.authenticateSocket(handshake);
      },
    };
    const node = await start({ maxConnections: 2 }, hooks);

    // Refused for the token, five times: nothing stays counted.
    for (let i = 0; i < 5; i++)
      expect((await refused(node, 'x', { token: 'bad' })).message).toBe('unauthorized');

    // Two handshakes in authentication fill the node: a third is refused.
    const slow = [connectAs(node, 'a', { hold: true }), connectAs(node, 'b', { hold: true })];
    await until(() => gates.length === 2, 5000, 'two handshakes in authentication');
    expect((await refused(node, 'c')).data?.code).toBe('node_full');
    for (const release of gates.splice(0)) release();
    const done = await Promise.all(slow);
    for (const c of done) expect(c).not.toBeInstanceOf(Error);
    for (const c of done) (c as TestClient).close();
    await until(async () => (await held(node)) === 0, 5000, 'both gone');

    // A client that goes away in the middle of its handshake frees its slot.
    const gone = io(node.url, {
      auth: { token: await token({ sub: 'g', channels: [] }), hold: true },
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
    });
    await until(() => gates.length === 1, 5000, 'the handshake in authentication');
    gone.close();
    const stillFree = await Promise.all([accepted(node, 'a'), accepted(node, 'b')]);
    stillFree.forEach(keep);
    // Its authentication finishing late admits nothing.
    gates.splice(0).forEach((release) => release());
    expect((await refused(node, 'c')).data?.code).toBe('node_full');
    expect(await held(node)).toBe(2);
  });

  it("per user: refuses a user's socket past maxConnectionsPerUser, other users pass, and the count follows disconnects", async () => {
    const node = await start({ maxConnectionsPerUser: 2 });
    const first = keep(await accepted(node, 'alice'));
    keep(await accepted(node, 'alice'));

    const refusal = await refused(node, 'alice');
    expect(refusal.message).toBe('unavailable');
    expect(refusal.data).toEqual({ code: 'too_many_user_connections' });
    keep(await accepted(node, 'bob'));
    keep(await accepted(node, 'bob'));

    first.close();
    await until(async () => (await held(node)) === 3, 5000, 'the node to count the disconnect');
    // The refusal held nothing: exactly one more alice gets in.
    keep(await accepted(node, 'alice'));
    expect((await refused(node, 'alice')).data?.code).toBe('too_many_user_connections');
  });

  it('per user: handshakes of one user running side by side are counted against each other', async () => {
    const node = await start({ maxConnectionsPerUser: 2 });
    const results = await Promise.all([...Array(6).keys()].map(() => connectAs(node, 'carol')));
    const ok = results.filter((r): r is TestClient => !(r instanceof Error));
    ok.forEach(keep);
    const codes = results
      .filter((r): r is ConnectRefusal => r instanceof Error)
      .map((r) => r.data?.code);
    expect(ok).toHaveLength(2);
    expect(codes).toEqual(Array(4).fill('too_many_user_connections'));
  });

  it('admission rate: a burst past connectRatePerSecond is refused with connect_rate_limited, later connections pass', async () => {
    const node = await start({ connectRatePerSecond: 5 });
    const subs = [...Array(20).keys()].map((i) => `r${i}`);
    const jwts = await Promise.all(subs.map((sub) => token({ sub, channels: [] })));
    const results = await burst(node.url, jwts, sockets);
    const ok = results.filter((r): r is Socket => !(r instanceof Error));
    const refusals = results.filter((r): r is ConnectRefusal => r instanceof Error);
    // The bucket holds 5; handling the burst takes a moment, so a token may refill meanwhile.
    expect(ok.length).toBeGreaterThanOrEqual(5);
    expect(ok.length).toBeLessThanOrEqual(6);
    expect(refusals).toHaveLength(20 - ok.length);
    for (const r of refusals) {
      expect(r.message).toBe('unavailable');
      expect(r.data?.code).toBe('connect_rate_limited');
      expect(r.data?.retryAfterMs).toBeGreaterThan(0);
    }

    // Once the bucket refills, the refused ones get in (each retrying when told to).
    const late: TestClient[] = [];
    let failures = 0;
    const retry = async (jwt: string): Promise<void> => {
      for (;;) {
        const r = await connectOrRefusal(node.url, { token: jwt });
        if (!(r instanceof Error)) return void late.push(keep(r));
        if (r.data?.code !== 'connect_rate_limited') return void (failures += 1);
        // As a client must: retry after the wait the refusal names.
        await new Promise((res) => setTimeout(res, Number(r.data?.retryAfterMs ?? 1000)));
      }
    };
    const refusedJwts = jwts.filter((_, i) => results[i] instanceof Error);
    void Promise.all(refusedJwts.map(retry));
    await until(
      () => late.length === refusedJwts.length || failures > 0,
      15_000,
      'the refused ones to get in',
    );
    expect(failures).toBe(0);
    expect(await held(node)).toBe(20);
  }, 20_000);
});
