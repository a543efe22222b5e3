import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { io, type Socket } from 'socket.io-client';
import { createClient, type PushcastClient, type PushMessage } from '../../src/client/index.js';
import { startRedis, type RedisFixture } from '../support/redis.js';
import { startNginx, type NginxFixture } from '../support/nginx.js';
import { freePort } from '../support/ports.js';
import { spawnNode, type NodeProcess } from '../support/process.js';
import { API_KEY, JWT_SECRET, token } from '../support/nodes.js';
import { until } from '../support/assertions.js';

const NODES = 3;
const CHANNELS = 10;
const SDK_CLIENTS = 100;
const PLAIN_CLIENTS = 100;
const PUSH_EVERY_MS = 8;

function nodeEnv(port: number, redisUrl: string): Record<string, string> {
  return {
    PORT: String(port),
    HOST: '127.0.0.1',
    REDIS_URL: redisUrl,
    NODE_ENV: 'test',
    LOG_LEVEL: 'info',
    PUSHCAST_API_KEYS: API_KEY,
    PUSHCAST_JWT_SECRET: JWT_SECRET,
    PUSHCAST_HISTORY_SIZE: '1000',
    PUSHCAST_SHUTDOWN_DELAY_MS: '200',
    PUSHCAST_DRAIN_TIMEOUT_MS: '5000',
    PUSHCAST_DISCONNECT_ON_SHUTDOWN: 'true',
    PUSHCAST_DISCONNECT_SPREAD_MS: '1000',
  };
}

/** Pushes the node on `port` has accepted (its `pushcast_pushes_requested_total`). */
async function pushesTaken(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return Number(/^pushcast_pushes_requested_total (\d+)/m.exec(text)?.[1] ?? 0);
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** A stock socket.io-client that rejoins with `since` by itself: what an app without the SDK does. */
interface PlainClient {
  socket: Socket;
  channel: string;
  received: PushMessage[];
  lost: number;
  reconnects: number[];
  /** Join acks received. */
  joins: number;
  /** Between a disconnect (or the start) and the ack of the join that follows. */
  away: boolean;
}

function plainClient(url: string, channel: string, jwt: string): PlainClient {
  const socket = io(url, { auth: { token: jwt }, transports: ['websocket'], forceNew: true });
  const client: PlainClient = {
    socket,
    channel,
    received: [],
    lost: 0,
    reconnects: [],
    joins: 0,
    away: true,
  };
  let offset: string | undefined;
  let disconnectedAt: number | undefined;
  socket.on('msg', (m: PushMessage) => {
    client.received.push(m);
    if (m.offset) offset = m.offset;
  });
  socket.on('disconnect', () => {
    disconnectedAt = performance.now();
    client.away = true;
  });
  socket.on('connect', () => {
    const payload = offset === undefined ? { channel } : { channel, since: offset };
    socket.emit('join', payload, (ack: { ok: boolean; recovered?: boolean; offset?: string }) => {
      if (offset === undefined && ack.offset) offset = ack.offset;
      if (payload.since !== undefined && ack.recovered !== true) client.lost += 1;
      if (disconnectedAt !== undefined) client.reconnects.push(performance.now() - disconnectedAt);
      disconnectedAt = undefined;
      client.joins += 1;
      client.away = false;
    });
  });
  return client;
}

describe('rolling deploy behind nginx', () => {
  let redis: RedisFixture;
  let lb: NginxFixture;
  const ports: number[] = [];
  const nodes: NodeProcess[] = [];

  beforeAll(async () => {
    redis = await startRedis();
    for (let i = 0; i < NODES; i++) ports.push(await freePort());
    for (const port of ports)
      nodes.push(spawnNode({ script: 'src/main.ts', env: nodeEnv(port, redis.url) }));
    await Promise.all(nodes.map((n) => n.waitForLine(/pushcast ready/)));
    lb = await startNginx(ports.map((port) => ({ port })));
  }, 60_000);

  afterAll(async () => {
    await Promise.allSettled(nodes.map((n) => n[Symbol.asyncDispose]()));
    await lb?.stop();
    await redis?.stop();
  });

  it('replaces every node under steady publishing: nothing lost, duplicated or reordered', async () => {
    const channel = (i: number) => `deploy:${i % CHANNELS}`;
    // One user per client, as in real life: a node admits only so many sockets per user.
    const jwt = (who: string) => token({ sub: who, channels: ['deploy:*'] });

    // Subscribers: SDK clients and plain clients, spread over the channels.
    const sdk: Array<{
      client: PushcastClient;
      channel: string;
      received: PushMessage[];
      lost: number;
      joins: number;
      away: boolean;
    }> = [];
    for (let i = 0; i < SDK_CLIENTS; i++) {
      const entry = {
        client: createClient(lb.url, {
          getToken: () => jwt(`sdk-${i}`),
          transports: ['websocket'],
        }),
        channel: channel(i),
        received: [] as PushMessage[],
        lost: 0,
        joins: 0,
        away: true,
      };
      entry.client.socket.on('disconnect', () => (entry.away = true));
      entry.client.subscribe(entry.channel, {
        onMessage: (m) => entry.received.push(m),
        onLost: () => (entry.lost += 1),
        onJoin: () => {
          entry.joins += 1;
          entry.away = false;
        },
      });
      sdk.push(entry);
    }
    const plain: PlainClient[] = [];
    for (let i = 0; i < PLAIN_CLIENTS; i++)
      plain.push(plainClient(lb.url, channel(i), await jwt(`plain-${i}`)));
    // A join answers once its subscription is active: every client has its answer.
    await until(
      () => sdk.every((s) => s.joins === 1) && plain.every((p) => p.joins === 1),
      20_000,
      'every client joined',
    );
    // Every client connected and joined on its current connection.
    const allBack = (): boolean =>
      sdk.every((s) => !s.away && s.client.socket.connected) &&
      plain.every((p) => !p.away && p.socket.connected);

    // Publisher: steady rate through nginx, retrying 502/503 and network errors with the same
    // Idempotency-Key, so each push is accepted exactly once.
    const accepted = new Map<string, string[]>();
    let publishing = true;
    let seq = 0;
    let retries = 0;
    const publisher = (async () => {
      while (publishing) {
        const n = seq++;
        const ch = channel(n);
        const started = Date.now();
        for (;;) {
          const res = await fetch(`${lb.url}/api/push`, {
            method: 'POST',
            headers: {
              authorization: `Bearer ${API_KEY}`,
              'content-type': 'application/json',
              'idempotency-key': `roll-${n}`,
            },
            body: JSON.stringify({ channel: ch, event: 'n', data: n }),
          }).catch(() => undefined);
          if (res?.status === 200) {
            const body = (await res.json()) as { id: string };
            accepted.set(ch, [...(accepted.get(ch) ?? []), body.id]);
            break;
          }
          await res?.text().catch(() => '');
          if (res && res.status !== 503 && res.status !== 502)
            throw new Error(`push ${n}: unexpected ${res.status}`);
          if (Date.now() - started > 10_000) throw new Error(`push ${n}: not accepted within 10 s`);
          retries += 1;
          // The publisher's retry pace, as a backend's would be.
          await new Promise((r) => setTimeout(r, 50));
        }
        // The publishing rate of the scenario.
        await new Promise((r) => setTimeout(r, PUSH_EVERY_MS));
      }
    })();

    const acceptedCount = (): number =>
      [...accepted.values()].reduce((a, ids) => a + ids.length, 0);
    /** Waits until `n` more pushes than now have been accepted. */
    const publishedMore = async (n: number, what: string): Promise<void> => {
      const from = acceptedCount();
      await until(() => acceptedCount() >= from + n, 20_000, what);
    };

    // Roll: replace each node in turn on the same port, once publishing is under way.
    const drainMs: number[] = [];
    await publishedMore(2 * CHANNELS, 'publishing under way');
    for (let i = 0; i < NODES; i++) {
      const old = nodes[i]!;
      const t0 = performance.now();
      old.kill('SIGTERM');
      const exit = await old.exited;
      drainMs.push(Math.round(performance.now() - t0));
      expect(exit, `node ${i} exit`).toEqual({ code: 0, signal: null });
      nodes[i] = spawnNode({ script: 'src/main.ts', env: nodeEnv(ports[i]!, redis.url) });
      await nodes[i]!.waitForLine(/pushcast ready/);
      // The next node goes once the balancer sends the new one traffic (it has taken pushes), and
      // every client the old one dropped is back and joined again.
      await until(
        async () => (await pushesTaken(ports[i]!)) > 0 && allBack(),
        20_000,
        `node ${i} replaced: in the rotation, every client back`,
      );
    }
    // Some publishing with every node replaced and every client back.
    await publishedMore(2 * CHANNELS, 'publishing after the roll');
    publishing = false;
    await publisher;

    const total = acceptedCount();
    expect(total).toBeGreaterThan(100);
    const complete = () =>
      sdk.every((s) => s.received.length >= (accepted.get(s.channel)?.length ?? 0)) &&
      plain.every((p) => p.received.length >= (accepted.get(p.channel)?.length ?? 0));
    await until(complete, 20_000, 'every subscriber to receive every accepted push').catch(
      () => {},
    );

    let lostMessages = 0;
    let duplicates = 0;
    let outOfOrder = 0;
    const check = (received: PushMessage[], ch: string) => {
      const want = accepted.get(ch) ?? [];
      const got = received.filter((m) => m.channel === ch).map((m) => m.id);
      const gotSet = new Set(got);
      lostMessages += want.filter((id) => !gotSet.has(id)).length;
      duplicates += got.length - gotSet.size;
      for (let k = 1; k < got.length; k++) if (got[k]! < got[k - 1]!) outOfOrder += 1;
      return got;
    };
    for (const s of sdk) check(s.received, s.channel);
    for (const p of plain) check(p.received, p.channel);

    const reconnects = plain.flatMap((p) => p.reconnects);
    const summary = {
      pushes: total,
      publisherRetries: retries,
      drainMs,
      reconnectP50Ms: Math.round(percentile(reconnects, 50)),
      reconnectP99Ms: Math.round(percentile(reconnects, 99)),
      lostMessages,
      duplicates,
      outOfOrder,
    };
    console.log('rolling deploy:', JSON.stringify(summary));

    expect({ lostMessages, duplicates, outOfOrder }).toEqual({
      lostMessages: 0,
      duplicates: 0,
      outOfOrder: 0,
    });
    for (const s of sdk) expect(s.received.map((m) => m.id)).toEqual(accepted.get(s.channel) ?? []);
    for (const p of plain)
      expect(p.received.map((m) => m.id)).toEqual(accepted.get(p.channel) ?? []);
    // Every node was replaced, so every client had to come back by itself, and recovered.
    expect(sdk.every((s) => s.joins >= 2 && s.lost === 0 && s.client.socket.connected)).toBe(true);
    expect(plain.every((p) => p.reconnects.length >= 1 && p.lost === 0 && p.socket.connected)).toBe(
      true,
    );

    for (const s of sdk) s.client.close();
    for (const p of plain) p.socket.close();
  }, 120_000);
});
