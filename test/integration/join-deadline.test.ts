import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hooks } from '../../src/auth/hooks.js';
import { withTimeout } from '../../src/backend/redis/timeout.js';
import { deadline } from '../../src/realtime/join-deadline.js';
import {
  connectClient,
  postJson,
  startNode,
  token,
  type TestClient,
  type TestNode,
} from '../support/nodes.js';
import { useRedis } from '../support/redis.js';

// A join's Redis steps run against one deadline (src/realtime/join-deadline.ts). A node busy with
// other work (a reconnect storm) fires timers late, and Node runs timers before it reads sockets:
// a reply that came in during the stall must still count, whether the deadline's own timer or the
// timeout of the step's Redis command fired first.

/** Holds the event loop for `ms`, as a node busy with thousands of rejoins does. */
function stall(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // busy
  }
}

/** The deadline: long enough for a round trip to Redis on a loaded machine, after a stall. */
const MS = 500;

describe('join deadline', () => {
  const redis = useRedis();
  /** A client without a command timeout, and one whose commands time out with the deadline. */
  let client: Redis;
  let timed: Redis;
  beforeAll(async () => {
    client = new Redis(redis.fixture.url);
    timed = new Redis(redis.fixture.url, { commandTimeout: MS });
    await Promise.all([client.ping(), timed.ping()]);
  });
  afterAll(async () => {
    await Promise.all([client.quit(), timed.quit()]);
  });

  it('takes a reply that came in while the node was stalled past the deadline', async () => {
    const missed: string[] = [];
    const within = deadline(MS, (why) => missed.push(why));
    const step = within(() => client.echo('a'));
    // Redis (another process) answers during the stall; the deadline falls inside it too.
    stall(2 * MS);
    expect(await step).toEqual({ value: 'a' });
    expect(missed).toEqual([]);
    // The stall did not use up the join's time: the next step still runs.
    expect(await within(() => client.echo('b'))).toEqual({ value: 'b' });
  });

  it.each([
    ["the command's own timeout (ioredis)", () => timed.echo('a')],
    ['its withTimeout', () => withTimeout(client.echo('a'), MS)],
  ])('runs a step again when %s fired in the stall', async (_, read) => {
    const missed: string[] = [];
    const within = deadline(MS, (why) => missed.push(why));
    let runs = 0;
    const step = within(
      () => {
        runs++;
        return read();
      },
      { repeatable: true },
    );
    stall(2 * MS);
    expect(await step).toEqual({ value: 'a' });
    expect(runs).toBe(2);
    expect(missed).toEqual([]);
  });

  it('still gives up a step that does not answer, with no stall', async () => {
    const missed: string[] = [];
    const within = deadline(MS, (why) => missed.push(why));
    const started = Date.now();
    expect(await within(() => new Promise<never>(() => undefined))).toBeUndefined();
    expect(missed).toEqual(['late']);
    // Bounded: given up in the deadline's time (a loose bound: this is no speed test).
    expect(Date.now() - started).toBeLessThan(10 * MS);
  });

  it('takes a reply not read yet when the timer fires a little late (no stall counted)', async () => {
    const missed: string[] = [];
    const within = deadline(MS, (why) => missed.push(why));
    const step = within(() => client.echo('a'));
    // The reply is in by then; the timer fires a few milliseconds late, before it is read.
    stall(MS + 5);
    expect(await step).toEqual({ value: 'a' });
    expect(missed).toEqual([]);
  });

  // A step that fails at once: how often it runs, by whether it may repeat and the node stalled.
  it.each([
    ['is run once when it fails in time', true, 0, 1],
    ['is run twice at most when its failure is seen after a stall', true, 2 * MS, 2],
    ['is never run again unless repeatable (a settle)', false, 2 * MS, 1],
  ])('a step that fails %s', async (_, repeatable, stallMs, expectedRuns) => {
    let runs = 0;
    const failing = (): Promise<never> => {
      runs++;
      return Promise.reject(new Error('refused'));
    };
    const missed: string[] = [];
    const within = deadline(MS, (why) => missed.push(why));
    const step = within(failing, { repeatable });
    stall(stallMs);
    expect(await step).toBeUndefined();
    expect(runs).toBe(expectedRuns);
    expect(missed).toEqual(['failed']);
  });

  it('starts the deadline again only once per join', async () => {
    const missed: string[] = [];
    const within = deadline(MS, (why) => missed.push(why));
    const first = within(() => client.echo('a'));
    stall(2 * MS);
    expect(await first).toEqual({ value: 'a' });
    // A second stall past the deadline started again: a reply already in is still read...
    const second = within(() => client.echo('b'));
    stall(2 * MS);
    expect(await second).toEqual({ value: 'b' });
    expect(missed).toEqual([]);
    // ... but the deadline is not started again: a later step of the join does not start.
    let started = false;
    expect(
      await within(() => {
        started = true;
        return client.echo('c');
      }),
    ).toBeUndefined();
    expect(started).toBe(false);
    expect(missed).toEqual(['late']);
  });

  it('answers one timeout after the end of a stall past the deadline, not sooner', async () => {
    const missed: string[] = [];
    const within = deadline(MS, (why) => missed.push(why));
    const step = within(() => new Promise<never>(() => undefined));
    stall(2 * MS);
    const stallEnded = performance.now();
    expect(await step).toBeUndefined();
    const after = performance.now() - stallEnded;
    // Started again at the stall's end (docs/protocol.md 5.3); loose above: no speed test.
    expect(after).toBeGreaterThanOrEqual(MS - 25);
    expect(after).toBeLessThan(3 * MS);
    expect(missed).toEqual(['late']);
  });

  it('gives up a step that never answers however often the node stalls', async () => {
    const missed: string[] = [];
    const within = deadline(100, (why) => missed.push(why));
    const step = within(() => new Promise<never>(() => undefined), { repeatable: true });
    let answered = false;
    void step.then(() => (answered = true));
    // Stall after every turn, each past the deadline: it moves for the first stall, not for more.
    for (let i = 0; i < 40 && !answered; i++) {
      stall(100);
      await new Promise((r) => setImmediate(r));
    }
    expect(answered).toBe(true);
    await step;
    expect(missed).toEqual(['late']);
  });
});

describe('a rejoin with since on a node that stalls', () => {
  const redis = useRedis();
  /** Joins with `params: { stall: true }` hold the event loop once their Redis reads are sent. */
  const hooks: Hooks = {
    authorizeJoin(_socket, _channel, params) {
      if ((params as { stall?: unknown } | undefined)?.stall === true)
        // Runs after this turn's work: the join's first Redis step is under way by then (a
        // subscription written, or a read whose timeout is armed; the read itself goes out in
        // ioredis' next batch, after the stall).
        setImmediate(() => stall(3 * MS));
      return true;
    },
  };
  const nodes: TestNode[] = [];
  const clients: TestClient[] = [];
  let urls: string[] = [];
  beforeAll(async () => {
    const config = { redisUrl: redis.fixture.url, redis: { commandTimeoutMs: MS } };
    for (let i = 0; i < 2; i++) nodes.push(await startNode(config, hooks));
    urls = nodes.map((n) => n.url);
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await Promise.all(nodes.map((n) => n.stop()));
  });

  const connect = async (url: string): Promise<TestClient> => {
    const client = await connectClient(url, { token: await token({ channels: ['*'] }) });
    clients.push(client);
    return client;
  };

  it.each([
    ['new to the node (its subscription answered in the stall)', false],
    ['already subscribed there (its history read timed out in the stall)', true],
  ])('recovers everything when the channel is %s', async (_, subscribed) => {
    const channel = `stalled-${subscribed ? 'sub' : 'new'}`;
    // A client of the first node saw the channel up to `since`.
    const seen = await connect(urls[0]!);
    const joined = await seen.join(channel);
    expect(joined).toMatchObject({ ok: true, channel });
    const since = joined.offset as string;
    expect(since).toEqual(expect.any(String));
    if (subscribed)
      expect(await (await connect(urls[1]!)).join(channel)).toMatchObject({ ok: true });
    for (const n of [1, 2, 3]) {
      const res = await postJson(`${urls[0]}/api/push`, { channel, event: 'e', data: { n } });
      expect(res.status).toBe(200);
    }
    await seen.waitFor(3);
    // It comes back on the second node, which stalls as its join's reads are under way.
    const back = await connect(urls[1]!);
    const answer = await back.join(channel, { since, params: { stall: true } });
    expect(answer).toMatchObject({ ok: true, channel, recovered: true, missed: 3 });
    const got = await back.waitFor(3);
    expect(got.map((m) => (m.data as { n: number }).n)).toEqual([1, 2, 3]);
    expect(answer.offset).toBe(seen.messages[2]!.offset);
  });
});
