import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deadline } from '../../src/realtime/join-deadline.js';
import { useRedis } from '../support/redis.js';

// A join's Redis steps run against one deadline (src/realtime/join-deadline.ts). A node busy
// with other work (a reconnect storm) fires the deadline's timer late, and Node runs timers
// before it reads sockets: a reply that came in during the stall must still count.

/** Holds the event loop for `ms`, as a node busy with thousands of rejoins does. */
function stall(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // busy
  }
}

describe('join deadline', () => {
  const redis = useRedis();
  let client: Redis;
  beforeAll(async () => {
    client = new Redis(redis.fixture.url);
    await client.ping();
  });
  afterAll(async () => {
    await client.quit();
  });

  /** A round trip to a real Redis, which answers at once (it is another process). */
  const roundTrip = (text: string): Promise<string> => client.echo(text);

  it('takes a reply that came in while the node was stalled past the deadline', async () => {
    const missed: string[] = [];
    const within = deadline(200, (why) => missed.push(why));
    const step = within(() => roundTrip('a'));
    // The reply arrives during the stall; the deadline falls inside it too.
    stall(400);
    expect(await step).toEqual({ value: 'a' });
    expect(missed).toEqual([]);
    // The stall did not use up the join's time: the next step still runs.
    expect(await within(() => roundTrip('b'))).toEqual({ value: 'b' });
  });

  it('still gives up a step that does not answer, with no stall', async () => {
    const missed: string[] = [];
    const within = deadline(100, (why) => missed.push(why));
    const started = Date.now();
    expect(await within(() => new Promise<never>(() => undefined))).toBeUndefined();
    expect(missed).toEqual(['late']);
    // Bounded: given up in the deadline's time (a loose bound: this is no speed test).
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('gives up a step that never answers however often the node stalls', async () => {
    const missed: string[] = [];
    const within = deadline(100, (why) => missed.push(why));
    const step = within(() => new Promise<never>(() => undefined));
    let answered = false;
    void step.then(() => (answered = true));
    // Stall after every turn: the deadline moves by each stall, but only so far.
    for (let i = 0; i < 20 && !answered; i++) {
      stall(60);
      await new Promise((r) => setImmediate(r));
    }
    await step;
    expect(missed).toEqual(['late']);
    // A later step of the same join does not start: the deadline has passed for good.
    expect(await within(() => roundTrip('c'))).toBeUndefined();
  });
});
