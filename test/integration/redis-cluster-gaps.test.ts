import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type PushcastClient } from '../../src/client/index.js';
import type { ChannelMessage } from '../../src/delivery/message.js';
import { expectExactly, until } from '../support/assertions.js';
import {
  connectClient,
  postJson,
  startNode,
  token,
  type TestClient,
  type TestNode,
} from '../support/nodes.js';
import { rawConnect, wsUrl } from '../support/phoenix.js';
import { startRedis, type RedisFixture } from '../support/redis.js';

/**
 * Pub/sub keeps nothing: a message published while one node's subscriber connection is down never
 * reaches that node. The node knows the last offset it handed to each room and fills the gap from
 * history once it is subscribed again, or, when history no longer holds it, sends the room's
 * sockets to rejoin with `since` (their SDK then reports the loss). Here on one Redis, in both
 * pub/sub modes, with the other node publishing all along (redis-cluster-failover.test.ts does it
 * on a Redis Cluster when a master dies).
 */

/** Ids of the clients named `name` connected to Redis now. */
async function clientIds(admin: Redis, name: string): Promise<string[]> {
  const list = (await admin.client('LIST')) as string;
  return list
    .split('\n')
    .filter((line) => line.includes(` name=${name} `))
    .map((line) => /^id=(\d+)/.exec(line)![1]!);
}

/**
 * Keeps one connection of a node away from Redis: kills it, and refuses new connections (Redis
 * at maxclients) until `release()`, so its reconnection waits while the other nodes publish.
 */
async function holdConnectionAway(admin: Redis, id: string): Promise<() => Promise<void>> {
  const connected = ((await admin.client('LIST')) as string).trim().split('\n').length;
  await admin.config('SET', 'maxclients', String(connected - 1));
  await admin.client('KILL', 'ID', id);
  return async () => {
    await admin.config('SET', 'maxclients', '10000');
  };
}

for (const mode of ['sharded', 'classic'] as const) {
  describe(`a node whose subscriber connection drops while another publishes (one Redis, ${mode})`, () => {
    let redis: RedisFixture;
    let admin: Redis;
    let publisher: TestNode;
    let receiver: TestNode;
    let receiverSub: string;
    const config = {
      redis: { mode },
      limits: { pushesPerSecond: 1e6, pushBurst: 1e6 },
      history: {
        size: 1000,
        ttlS: 60,
        channels: [{ pattern: 'small:*', size: 5 }],
      },
    };

    beforeAll(async () => {
      redis = await startRedis();
      admin = new Redis(redis.url);
      publisher = await startNode({ redisUrl: redis.url, ...config });
      const before = await clientIds(admin, 'pushcast-sub');
      receiver = await startNode({ redisUrl: redis.url, ...config });
      const after = await clientIds(admin, 'pushcast-sub');
      receiverSub = after.filter((id) => !before.includes(id))[0]!;
      expect(receiverSub).toBeDefined();
    });
    afterAll(async () => {
      admin?.disconnect();
      await Promise.allSettled([publisher?.stop(), receiver?.stop()]);
      await redis?.stop();
    });
    afterEach(async () => {
      await admin.config('SET', 'maxclients', '10000');
    });

    /**
     * Pushes one after another on the publisher until stopped (waiting while paused); the data of
     * each 200.
     */
    const publish = (channel: string) => {
      const answered: number[] = [];
      let running = true;
      let paused = false;
      const done = (async () => {
        for (let i = 0; running; i++) {
          while (paused && running) await new Promise((r) => setTimeout(r, 10));
          const r = await postJson(`${publisher.url}/api/push`, { channel, event: 'e', data: i });
          if (r.status === 200) answered.push(i);
        }
      })();
      return {
        answered,
        pause: (on: boolean) => void (paused = on),
        stop: async () => {
          running = false;
          await done;
        },
      };
    };
    const readyz = async (node: TestNode) => (await fetch(`${node.url}/readyz`)).status;

    it('fills what it missed from history: every push answered 200, in order, nothing twice', async () => {
      const channel = `gap:${mode}`;
      const c: TestClient = await connectClient(receiver.url, {
        token: await token({ sub: 'u', channels: [channel] }),
      });
      let closed = '';
      c.socket.on('disconnect', (reason) => (closed = reason));
      try {
        expect(await c.join(channel)).toMatchObject({ ok: true });
        const pushes = publish(channel);
        await until(() => pushes.answered.length >= 5, 5000, 'pushes before the drop');
        const release = await holdConnectionAway(admin, receiverSub);
        await until(async () => (await readyz(receiver)) === 503, 5000, 'the receiver to see it');
        const during = pushes.answered.length;
        await until(() => pushes.answered.length >= during + 30, 10_000, 'pushes while away');
        // Bounded, so history (1000 here) holds the whole gap however long the reconnection takes.
        pushes.pause(true);
        await release();
        await until(async () => (await readyz(receiver)) === 200, 10_000, 'the receiver back');
        pushes.pause(false);
        await until(() => pushes.answered.length >= during + 60, 10_000, 'pushes after');
        await pushes.stop();
        await expectExactly(publisher, c, channel, pushes.answered.length);
        expect(c.messages.slice(0, -1).map((m) => m.data)).toEqual(pushes.answered);
        const ns = c.messages.map((m: ChannelMessage) => Number(m.offset!.split(':')[1]));
        expect(ns).toEqual(ns.map((_, k) => ns[0]! + k));
        expect(closed).toBe('');
        // Refreshed for the next test: the receiver's subscriber connection has a new id.
        const ids = await clientIds(admin, 'pushcast-sub');
        receiverSub = ids.at(-1)!;
      } finally {
        c.close();
      }
    });

    it('sends the sockets to rejoin with since when history no longer holds the gap: the SDK reports the loss, a Phoenix client is closed too', async () => {
      const channel = `small:${mode}`;
      const lost: Array<{ channel: string; since?: string }> = [];
      const received: unknown[] = [];
      let states: string[] = [];
      const sdk: PushcastClient = createClient(receiver.url, {
        token: await token({ sub: 'u', channels: [channel] }),
        transports: ['websocket'],
        backoff: { baseMs: 50, capMs: 200 },
        onStateChange: (state) => states.push(state),
      });
      const joined: unknown[] = [];
      sdk.subscribe(channel, {
        onMessage: (m) => received.push(m.data),
        onLost: (info) => lost.push(info),
        onJoin: (info) => joined.push(info),
      });
      // A PushEx client in the same channel on the same node.
      const phx = await rawConnect(
        `${wsUrl(receiver)}/websocket?vsn=2.0.0&token=${await token({ sub: 'p', channels: [channel] })}`,
      );
      try {
        phx.send(['1', '1', channel, 'phx_join', {}]);
        expect((await phx.reply('1')).status).toBe('ok');
        await until(() => joined.length === 1, 5000, 'the first join');
        await postJson(`${publisher.url}/api/push`, { channel, event: 'e', data: 'before' });
        await until(() => received.length === 1, 5000, 'a first message');
        states = [];
        // Find the receiver's subscriber connection again (earlier tests replaced it).
        const ids = await clientIds(admin, 'pushcast-sub');
        const mine = ids.filter((id) => Number(id) >= Number(receiverSub));
        const release = await holdConnectionAway(admin, mine.at(-1) ?? receiverSub);
        await until(async () => (await readyz(receiver)) === 503, 5000, 'the receiver to see it');
        // History keeps 5 messages of this channel: 20 cannot be filled.
        for (let i = 0; i < 20; i++)
          expect(
            (await postJson(`${publisher.url}/api/push`, { channel, event: 'e', data: i })).status,
          ).toBe(200);
        await release();
        await until(() => lost.length === 1, 10_000, 'the SDK to report the loss');
        expect(lost[0]!.channel).toBe(channel);
        // Its transport closed (going away), so that phoenix.js rejoins; not left silently behind.
        expect((await phx.closed).code).toBe(1001);
        // It reconnected (a transport close, not a refusal) and rejoined; live again.
        expect(states).toContain('disconnected');
        const live = await postJson(`${publisher.url}/api/push`, {
          channel,
          event: 'e',
          data: 'after',
        });
        expect(live.status).toBe(200);
        await until(() => received.includes('after'), 5000, 'live messages after the rejoin');
      } finally {
        sdk.close();
        phx.ws.terminate();
      }
    });
  });
}
