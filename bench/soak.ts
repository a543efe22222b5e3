/**
 * Soak: two nodes on one Redis for `durationS` seconds of steady publishing (through both nodes,
 * with Idempotency-Keys and retries on 503), a few hundred SDK subscribers of which a third keep
 * dropping their connection (half come back to the same node by themselves, half move to the
 * other node and rejoin with `since`), late joiners, short-lived sockets that join and leave, and
 * a trickle of bad input (HTTP and socket). At the end a sentinel push per channel; once every
 * subscriber has it, every push answered 200 is looked for at every subscriber of its channel:
 * exactly once, in order. Memory of each node at the start and the end (after a quiet spell).
 */
import { loadavg } from 'node:os';
import { gzipSync } from 'node:zlib';
import { io, type Socket } from 'socket.io-client';
import { Redis } from 'ioredis';
import {
  createClient,
  type PushcastClient,
  type PushMessage,
  type Subscription,
} from '../src/client/index.js';
import {
  API_KEY,
  details,
  httpRequest,
  memoryOf,
  metric,
  pct,
  record,
  settledMemory,
  sleep,
  startNode,
  stop,
  token,
  type BenchNode,
} from './support.js';

export interface SoakOptions {
  durationS: number;
  /** Subscribers connected from the start (late joiners add a tenth more). */
  subscribers: number;
  /** Pushes per second, over all channels and both nodes. */
  rate: number;
}

const CHANNELS = 20;
const CHANNELS_PER_SUBSCRIBER = 3;
const STREAMS_PER_CHANNEL = 2;
const channelName = (c: number): string => `soak:${c}`;
const BENCH = 'soak';

/** A small seeded PRNG (mulberry32): the same run makes the same choices. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function until(pred: () => boolean, timeoutMs: number, stepMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) return false;
    await sleep(stepMs);
  }
  return true;
}

/** One push a publisher stream made: its outcome and when. */
interface PushRecord {
  channel: string;
  stream: number;
  seq: number;
  id?: string;
  status: number;
  attempts: number;
  sentAt: number;
  answeredAt: number;
}

/** One message as a subscriber's app saw it (after the SDK dropped duplicates by id). */
interface Got {
  stream: number;
  seq: number;
  id: string;
  offset?: string;
  at: number;
}

interface Subscriber {
  index: number;
  user: string;
  jwt: string;
  channels: string[];
  node: number;
  transports: Array<'websocket' | 'polling'>;
  client?: PushcastClient;
  subs: Map<string, Subscription>;
  got: Map<string, Got[]>;
  /** Channels joined on the current connection. */
  joined: Set<string>;
  /** First join answer per channel (late joiners are owed only what was pushed after it). */
  firstJoin: Map<string, number>;
  late: boolean;
  sentinels: Set<string>;
  rawFrames: number;
  onLost: number;
  errors: string[];
  busy: boolean;
  events: Array<[number, string]>;
}

export async function soak(redisUrl: string, opts: SoakOptions): Promise<void> {
  const t0 = Date.now();
  const rel = (t: number): number => Math.round((t - t0) / 100) / 10;
  const random = prng(Number(process.env.BENCH_SEED ?? 1));
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const runId = `${process.pid}-${t0}`;
  const channels = [...Array(CHANNELS).keys()].map(channelName);
  const env = { REDIS_URL: redisUrl, LOG_LEVEL: 'warn' };
  const nodes: BenchNode[] = await Promise.all([
    startNode(env, { gcOnSignal: true }),
    startNode(env, { gcOnSignal: true }),
  ]);
  const admin = new Redis(redisUrl);
  const subscribers: Subscriber[] = [];
  const sockets = new Set<Socket>();
  console.error(
    `soak: ${opts.durationS} s, ${opts.subscribers} subscribers, ${opts.rate} pushes/s, ` +
      `nodes ${nodes.map((n) => `${n.url} (pid ${n.pid})`).join(', ')}`,
  );
  try {
    const redisMemory = async (): Promise<number> => {
      const info = await admin.info('memory');
      return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? NaN) / 2 ** 20;
    };
    const boot = await Promise.all(nodes.map((n) => settledMemory(n, 0)));

    // --- subscribers -----------------------------------------------------------------------
    const note = (s: Subscriber, what: string): void => {
      s.events.push([Date.now(), what]);
      if (s.events.length > 300) s.events.shift();
    };
    const connect = (s: Subscriber, offsets?: Map<string, string | undefined>): void => {
      const client = createClient(nodes[s.node]!.url, {
        token: s.jwt,
        transports: s.transports,
        onStateChange: (state) => {
          if (state === 'disconnected') s.joined.clear();
          note(s, `${state} (node ${s.node})`);
        },
        onError: (err) => s.errors.push(`client: ${err.code}`),
      });
      client.socket.on('msg', () => (s.rawFrames += 1));
      s.client = client;
      for (const channel of s.channels) {
        const sub = client.subscribe(channel, {
          onMessage: (m: PushMessage) => {
            if (m.event === 'sentinel') {
              s.sentinels.add(channel);
              return;
            }
            const data = m.data as { s: number; q: number };
            s.got.get(channel)!.push({
              stream: data.s,
              seq: data.q,
              id: m.id,
              ...(m.offset !== undefined ? { offset: m.offset } : {}),
              at: Date.now(),
            });
          },
          onJoin: (info) => {
            s.joined.add(channel);
            if (!s.firstJoin.has(channel)) s.firstJoin.set(channel, Date.now());
            note(
              s,
              `joined ${channel} offset ${info.offset} recovered ${info.recovered} missed ${info.missed}`,
            );
          },
          onLost: (info) => {
            s.onLost += 1;
            note(s, `LOST ${channel} since ${info.since}`);
          },
          onError: (err) => s.errors.push(`join ${channel}: ${err.message}`),
          onLeft: (info) => s.errors.push(`left ${channel}: ${info.reason}`),
        });
        // A client that moves to another node resumes where the old one stopped.
        const since = offsets?.get(channel);
        if (since !== undefined) sub.offset = since;
        s.subs.set(channel, sub);
      }
    };
    const newSubscriber = async (index: number, late: boolean): Promise<Subscriber> => {
      const first = index % CHANNELS;
      const mine = [0, 7, 13]
        .slice(0, CHANNELS_PER_SUBSCRIBER)
        .map((k) => channelName((first + k) % CHANNELS));
      const user = `soak-user-${index}`;
      const s: Subscriber = {
        index,
        user,
        jwt: await token(user, ['soak:*'], { exp: '2h' }),
        channels: mine,
        node: index % 2,
        // Every tenth starts on long-polling and upgrades.
        transports: index % 10 === 9 ? ['polling', 'websocket'] : ['websocket'],
        subs: new Map(),
        got: new Map(mine.map((c) => [c, []])),
        joined: new Set(),
        firstJoin: new Map(),
        late,
        sentinels: new Set(),
        rawFrames: 0,
        onLost: 0,
        errors: [],
        busy: false,
        events: [],
      };
      subscribers.push(s);
      connect(s);
      return s;
    };
    const fullyJoined = (s: Subscriber): boolean =>
      s.client?.socket.connected === true && s.joined.size === s.channels.length;

    for (let start = 0; start < opts.subscribers; start += 50) {
      const batch = await Promise.all(
        [...Array(Math.min(50, opts.subscribers - start)).keys()].map((k) =>
          newSubscriber(start + k, false),
        ),
      );
      if (!(await until(() => batch.every(fullyJoined), 30_000)))
        throw new Error('soak: subscribers did not all join at the start');
    }
    const startMemory = await Promise.all(nodes.map((n) => settledMemory(n, 2000)));
    const redisStart = await redisMemory();
    const loadStart = loadavg()[0]!;
    console.error(`soak: ${subscribers.length} subscribers joined; publishing`);

    // --- publishers --------------------------------------------------------------------------
    const pushes: PushRecord[] = [];
    let retries = 0;
    const retryStatuses = new Map<string, number>();
    const unexpectedPushAnswers: string[] = [];
    let running = true;
    const publishStart = Date.now();
    const endAt = publishStart + opts.durationS * 1000;

    /** One push with its Idempotency-Key, retried (on the other node) while it is 503 or lost. */
    const publish = async (
      channel: string,
      stream: number,
      seq: number,
      event: string,
      data: unknown,
      firstNode: number,
    ): Promise<PushRecord> => {
      const body = JSON.stringify({ channel, event, data });
      const rec: PushRecord = {
        channel,
        stream,
        seq,
        status: 0,
        attempts: 0,
        sentAt: Date.now(),
        answeredAt: 0,
      };
      let nodeIndex = firstNode;
      for (;;) {
        rec.attempts += 1;
        let status = 0;
        let text = '';
        try {
          const res = await httpRequest(`${nodes[nodeIndex]!.url}/api/push`, {
            method: 'POST',
            headers: {
              authorization: `Bearer ${API_KEY}`,
              'content-type': 'application/json',
              'content-length': Buffer.byteLength(body),
              'idempotency-key': `soak-${runId}-${channel}-${stream}-${seq}-${event}`,
            },
            body,
          });
          status = res.status;
          text = res.body;
        } catch (err) {
          text = String(err);
        }
        rec.status = status;
        rec.answeredAt = Date.now();
        if (status === 200) {
          rec.id = (JSON.parse(text) as { id: string }).id;
          return rec;
        }
        const retryable = status === 0 || status === 502 || status === 503 || status === 429;
        if (!retryable || Date.now() - rec.sentAt > 20_000) {
          unexpectedPushAnswers.push(
            `${channel} ${stream}/${seq}: ${status} ${text.slice(0, 200)}`,
          );
          return rec;
        }
        retries += 1;
        const why = status === 0 ? `network: ${text.slice(0, 60)}` : String(status);
        retryStatuses.set(why, (retryStatuses.get(why) ?? 0) + 1);
        await sleep(Math.min(1000, 100 * rec.attempts));
        nodeIndex = 1 - nodeIndex;
      }
    };

    const streams = CHANNELS * STREAMS_PER_CHANNEL;
    const intervalMs = (streams / opts.rate) * 1000;
    const publishers = [...Array(streams).keys()].map(async (stream) => {
      const channel = channelName(Math.floor(stream / STREAMS_PER_CHANNEL));
      const home = stream % 2;
      // Spread the streams' ticks over one interval.
      let next = Date.now() + (stream / streams) * intervalMs;
      for (let seq = 0; Date.now() < endAt; seq++) {
        await sleep(Math.max(0, next - Date.now()));
        if (Date.now() >= endAt) break;
        next = Math.max(next + intervalMs, Date.now());
        pushes.push(await publish(channel, stream, seq, 'soak', { s: stream, q: seq }, home));
      }
    });

    // --- reconnecting subscribers -------------------------------------------------------------
    const reconnectMs: number[] = [];
    let sameNode = 0;
    let moved = 0;
    let notBack = 0;
    const reconnectOne = async (s: Subscriber): Promise<void> => {
      s.busy = true;
      const started = Date.now();
      const move = random() < 0.5;
      if (move) {
        // The load balancer sends it elsewhere: a new connection to the other node that rejoins
        // with the offsets the old one had reached.
        const offsets = new Map([...s.subs].map(([c, sub]) => [c, sub.offset]));
        s.client!.close();
        s.joined.clear();
        s.node = 1 - s.node;
        note(s, `moving to node ${s.node}`);
        connect(s, offsets);
        moved += 1;
      } else {
        // The connection drops; the SDK reconnects by itself and rejoins with `since`.
        note(s, 'dropping transport');
        s.client!.socket.io.engine.close();
        s.joined.clear();
        sameNode += 1;
      }
      if (await until(() => fullyJoined(s), 30_000)) reconnectMs.push(Date.now() - started);
      else {
        notBack += 1;
        note(s, 'did not come back within 30 s');
      }
      s.busy = false;
    };
    const reconnecting = subscribers.filter((s) => s.index % 3 === 0);
    const churn = (async () => {
      const pending: Array<Promise<void>> = [];
      // Each reconnecting subscriber drops about every 20 s.
      const perSecond = Math.max(1, Math.round(reconnecting.length / 20));
      while (running) {
        for (let k = 0; k < perSecond; k++) {
          const s = pick(reconnecting);
          if (!s.busy) pending.push(reconnectOne(s));
        }
        await sleep(1000);
      }
      await Promise.all(pending);
    })();

    // --- late joiners ---------------------------------------------------------------------------
    const lateCount = Math.max(1, Math.round(opts.subscribers / 10));
    const lateJoiners = (async () => {
      const spacing = (opts.durationS * 1000 * 0.7) / lateCount;
      for (let k = 0; k < lateCount && running; k++) {
        await sleep(spacing);
        if (running) await newSubscriber(opts.subscribers + k, true);
      }
    })();

    // --- short-lived sockets: connect, join, leave, disconnect --------------------------------
    let transientJoins = 0;
    const transientProblems: string[] = [];
    const transientJwt = await token('soak-transient', ['soak:*']);
    const transients = (async () => {
      while (running) {
        const node = pick(nodes);
        const channel = pick(channels);
        const socket = io(node.url, {
          auth: { token: transientJwt },
          transports: ['websocket'],
          reconnection: false,
          forceNew: true,
        });
        sockets.add(socket);
        try {
          await new Promise<void>((resolve, reject) => {
            socket.once('connect', resolve);
            socket.once('connect_error', reject);
          });
          const joined = (await socket.timeout(5000).emitWithAck('join', { channel })) as {
            ok: boolean;
          };
          if (joined.ok) transientJoins += 1;
          else transientProblems.push(`join ${JSON.stringify(joined)}`);
          await sleep(200 + random() * 1300);
          const left = (await socket.timeout(5000).emitWithAck('leave', { channel })) as {
            ok: boolean;
          };
          if (!left.ok) transientProblems.push(`leave ${JSON.stringify(left)}`);
        } catch (err) {
          transientProblems.push(String(err));
        } finally {
          socket.close();
          sockets.delete(socket);
        }
        await sleep(300);
      }
    })();

    // --- bad input ------------------------------------------------------------------------------
    const badInput = await badInputTrickle(nodes, sockets, () => running, pick);

    // --- memory while it runs -----------------------------------------------------------------
    const series: Array<{ t: number; nodes: Array<{ rssMiB: number; heapMiB: number }> }> = [];
    const sampler = (async () => {
      while (running) {
        const sample = {
          t: rel(Date.now()),
          nodes: await Promise.all(nodes.map((n) => memoryOf(n.url))),
        };
        series.push(sample);
        if (series.length % 6 === 0)
          console.error(
            `soak: ${Math.round((Date.now() - publishStart) / 1000)} s, ` +
              `${pushes.filter((p) => p.status === 200).length} pushes, ` +
              `${sameNode + moved} reconnects, heap ` +
              sample.nodes.map((m) => `${m.heapMiB.toFixed(1)} MiB`).join(' / '),
          );
        await sleep(5000);
      }
    })();

    await sleep(Math.max(0, endAt - Date.now()));
    running = false;
    const publishSeconds = (Date.now() - publishStart) / 1000;
    await Promise.all([...publishers, churn, lateJoiners, transients, badInput.done, sampler]);
    console.error(`soak: published for ${Math.round(publishSeconds)} s; checking`);

    // --- the end: everyone back, a sentinel per channel, then the count ------------------------
    const backInTime = await until(() => subscribers.every(fullyJoined), 30_000);
    const sentinels = await Promise.all(
      channels.map((channel, c) => publish(channel, -1, 0, 'sentinel', { sentinel: true }, c % 2)),
    );
    const sentinelsAccepted = sentinels.filter((r) => r.status === 200).length;
    const sentinelStart = Date.now();
    const allSentinels = await until(
      () => subscribers.every((s) => s.channels.every((c) => s.sentinels.has(c))),
      30_000,
    );
    const sentinelWaitMs = Date.now() - sentinelStart;

    const accepted = new Map<string, Map<string, PushRecord>>(channels.map((c) => [c, new Map()]));
    for (const p of pushes)
      if (p.status === 200) accepted.get(p.channel)!.set(`${p.stream}:${p.seq}`, p);
    let owed = 0;
    let lost = 0;
    let duplicates = 0;
    let outOfOrder = 0;
    let unexpected = 0;
    const lostDetails: unknown[] = [];
    const orderDetails: unknown[] = [];
    const duplicateDetails: unknown[] = [];
    for (const s of subscribers) {
      for (const channel of s.channels) {
        const got = s.got.get(channel)!;
        const want = accepted.get(channel)!;
        const counts = new Map<string, number>();
        const lastSeq = new Map<number, number>();
        let lastN: { epoch: string; n: number } | undefined;
        for (const g of got) {
          const key = `${g.stream}:${g.seq}`;
          counts.set(key, (counts.get(key) ?? 0) + 1);
          if (!want.has(key)) unexpected += 1;
          const prev = lastSeq.get(g.stream);
          const m = /^(.*):(\d+)$/.exec(g.offset ?? '');
          const n = m ? { epoch: m[1]!, n: Number(m[2]) } : undefined;
          const reordered =
            (prev !== undefined && g.seq <= prev) ||
            (n && lastN && n.epoch === lastN.epoch && n.n <= lastN.n);
          if (reordered) {
            outOfOrder += 1;
            if (orderDetails.length < 10)
              orderDetails.push({
                subscriber: s.index,
                channel,
                key,
                offset: g.offset,
                previousSeq: prev,
                previousOffset: lastN,
                at: rel(g.at),
              });
          }
          lastSeq.set(g.stream, Math.max(prev ?? -1, g.seq));
          if (n) lastN = n;
        }
        for (const [key, count] of counts)
          if (count > 1) {
            duplicates += count - 1;
            if (duplicateDetails.length < 10)
              duplicateDetails.push({
                subscriber: s.index,
                channel,
                key,
                count,
                ids: got.filter((g) => `${g.stream}:${g.seq}` === key).map((g) => g.id),
                events: s.events.slice(-10).map(([t, e]) => `${rel(t)} ${e}`),
              });
          }
        const joinedAt = s.firstJoin.get(channel) ?? Infinity;
        for (const [key, p] of want) {
          // A late joiner is owed what was pushed after its join was answered.
          if (s.late && p.sentAt <= joinedAt) continue;
          owed += 1;
          if (counts.has(key)) continue;
          lost += 1;
          if (lostDetails.length < 10)
            lostDetails.push({
              subscriber: s.index,
              late: s.late,
              node: s.node,
              channel,
              key,
              id: p.id,
              sentAt: rel(p.sentAt),
              answeredAt: rel(p.answeredAt),
              attempts: p.attempts,
              // What the subscriber went through around that push.
              around: s.events
                .filter(([t]) => Math.abs(t - p.sentAt) < 5000)
                .map(([t, e]) => `${rel(t)} ${e}`),
            });
        }
      }
    }
    const socketsLost = subscribers.filter((s) => !fullyJoined(s));
    const recoveriesFailed = subscribers.reduce((a, s) => a + s.onLost, 0);
    const clientErrors = subscribers.flatMap((s) => s.errors.map((e) => `${s.index}: ${e}`));
    const serverSockets = await Promise.all(
      nodes.map((n) => metric(n.url, 'pushcast_sockets_connected')),
    );
    const rawFrames = subscribers.reduce((a, s) => a + s.rawFrames, 0);
    const appMessages = subscribers.reduce(
      (a, s) => a + [...s.got.values()].reduce((b, g) => b + g.length, 0) + s.sentinels.size,
      0,
    );

    // Memory at the end: same subscribers still connected, after a quiet spell.
    const endMemory = await Promise.all(nodes.map((n) => settledMemory(n, 3000)));
    const redisEnd = await redisMemory();
    // And once every client has gone: back near where the node booted, or something is kept.
    for (const s of subscribers) s.client?.close();
    for (const socket of sockets) socket.close();
    const leftMemory = await Promise.all(nodes.map((n) => settledMemory(n, 3000)));
    const socketsAfterClose = await Promise.all(
      nodes.map((n) => metric(n.url, 'pushcast_sockets_connected')),
    );
    // The highest sample while it ran (every 5 s, without a forced GC).
    const peak = nodes.map((_, i) => ({
      rssMiB: Math.max(...series.map((p) => p.nodes[i]!.rssMiB)),
      heapMiB: Math.max(...series.map((p) => p.nodes[i]!.heapMiB)),
    }));

    const acceptedCount = pushes.filter((p) => p.status === 200).length;
    record(BENCH, 'duration', opts.durationS, 's');
    record(BENCH, 'subscribers (from the start + late)', subscribers.length, 'sockets');
    record(BENCH, 'pushes answered 200', acceptedCount, 'pushes');
    record(BENCH, 'pushes per second', acceptedCount / publishSeconds, 'req/s');
    record(BENCH, 'publisher retries (503, network)', retries, 'count');
    record(BENCH, 'pushes not accepted after retries', pushes.length - acceptedCount, 'count');
    record(BENCH, 'deliveries owed', owed, 'msgs');
    record(BENCH, 'pushes lost', lost, 'msgs');
    record(BENCH, 'duplicates', duplicates, 'msgs');
    record(BENCH, 'out of order', outOfOrder, 'msgs');
    record(BENCH, 'deliveries of pushes not answered 200', unexpected, 'msgs');
    record(BENCH, 'duplicate frames dropped by the SDK', rawFrames - appMessages, 'msgs');
    record(BENCH, 'reconnects (same node)', sameNode, 'count');
    record(BENCH, 'reconnects (moved to the other node)', moved, 'count');
    record(BENCH, 'reconnect to rejoined p50', pct(reconnectMs, 50), 'ms');
    record(BENCH, 'reconnect to rejoined p99', pct(reconnectMs, 99), 'ms');
    record(BENCH, 'recoveries refused (onLost)', recoveriesFailed, 'count');
    record(BENCH, 'sockets lost', socketsLost.length, 'sockets');
    record(BENCH, 'sentinel to every subscriber', sentinelWaitMs, 'ms');
    record(BENCH, 'short-lived sockets joined and left', transientJoins, 'count');
    record(BENCH, 'bad input sent', badInput.sent(), 'requests');
    record(BENCH, 'bad input answered otherwise than expected', badInput.unexpected(), 'count');
    record(
      BENCH,
      'server log lines at warn/error',
      nodes.reduce((a, n) => a + n.logged.warn + n.logged.error, 0),
      'lines',
    );
    // start: subscribers joined, before publishing; end: after the check, the same subscribers
    // and the late joiners still connected; both after a full GC. peak: highest 5 s sample.
    nodes.forEach((_, i) => {
      const label = `node ${i + 1}`;
      record(BENCH, `${label} RSS start`, startMemory[i]!.rssMiB, 'MiB');
      record(BENCH, `${label} RSS end`, endMemory[i]!.rssMiB, 'MiB');
      record(BENCH, `${label} RSS peak`, peak[i]!.rssMiB, 'MiB');
      record(BENCH, `${label} heap start`, startMemory[i]!.heapMiB, 'MiB');
      record(BENCH, `${label} heap end`, endMemory[i]!.heapMiB, 'MiB');
      record(BENCH, `${label} heap peak`, peak[i]!.heapMiB, 'MiB');
      record(BENCH, `${label} heap at boot`, boot[i]!.heapMiB, 'MiB');
      record(BENCH, `${label} heap after every client left`, leftMemory[i]!.heapMiB, 'MiB');
    });
    record(BENCH, 'redis used memory start', redisStart, 'MiB');
    record(BENCH, 'redis used memory end', redisEnd, 'MiB');
    // Others' processes on the same cores show up in the timings above.
    record(BENCH, 'machine load average (1 min) at start', loadStart, 'procs');
    record(BENCH, 'machine load average (1 min) at end', loadavg()[0]!, 'procs');

    details.soak = {
      options: { ...opts, channels: CHANNELS, channelsPerSubscriber: CHANNELS_PER_SUBSCRIBER },
      nodes: nodes.map((n, i) => ({
        pid: n.pid,
        bootMemory: boot[i],
        startMemory: startMemory[i],
        endMemory: endMemory[i],
        afterClientsLeft: leftMemory[i],
        socketsConnectedAfterClientsLeft: socketsAfterClose[i],
        peak: peak[i],
        socketsConnectedAtEnd: serverSockets[i],
        logged: n.logged,
      })),
      everyoneBackBeforeSentinel: backInTime,
      sentinelsAccepted,
      everySentinelArrived: allSentinels,
      retryStatuses: Object.fromEntries(retryStatuses),
      unexpectedPushAnswers: unexpectedPushAnswers.slice(0, 20),
      notBackWithin30s: notBack,
      socketsLost: socketsLost.slice(0, 10).map((s) => ({
        subscriber: s.index,
        connected: s.client?.socket.connected,
        joined: [...s.joined],
        events: s.events.slice(-10).map(([t, e]) => `${rel(t)} ${e}`),
      })),
      lost: lostDetails,
      duplicates: duplicateDetails,
      outOfOrder: orderDetails,
      clientErrors: clientErrors.slice(0, 20),
      transientProblems: transientProblems.slice(0, 20),
      badInput: badInput.summary(),
      memorySeries: series,
    };
  } finally {
    for (const s of subscribers) s.client?.close();
    for (const socket of sockets) socket.close();
    admin.disconnect();
    await Promise.all(nodes.map((n) => stop(n.child)));
  }
}

/** What a bad input is answered with, and whether that was the expected answer. */
type Outcome = { ok: boolean; what: string };

/**
 * A trickle of bad input, one every 250 ms, through both nodes: HTTP bodies and headers the API
 * must refuse (with the right status), refused socket tokens, and junk socket events that must
 * be answered through their acknowledgement without closing the socket.
 */
async function badInputTrickle(
  nodes: BenchNode[],
  sockets: Set<Socket>,
  running: () => boolean,
  pick: <T>(items: readonly T[]) => T,
): Promise<{
  done: Promise<void>;
  sent: () => number;
  unexpected: () => number;
  summary: () => Record<string, { sent: number; unexpected: number; samples: string[] }>;
}> {
  const good = {
    authorization: `Bearer ${API_KEY}`,
    'content-type': 'application/json',
  };
  const pushBody = (data: unknown, channel = 'soak-junk:0'): string =>
    JSON.stringify({ channel, event: 'junk', data });
  const post = async (
    url: string,
    body: string | Buffer,
    headers: Record<string, string> = good,
    path = '/api/push',
  ): Promise<number> =>
    (
      await httpRequest(`${url}${path}`, {
        method: 'POST',
        headers: { ...headers, 'content-length': Buffer.byteLength(body) },
        body,
      })
    ).status;
  const expectStatus =
    (want: number[], send: (url: string) => Promise<number>) =>
    async (url: string): Promise<Outcome> => {
      const status = await send(url);
      return { ok: want.includes(status), what: String(status) };
    };
  const corruptGzip = (() => {
    const gz = gzipSync(pushBody({ a: 1 }));
    // The CRC in the trailer no longer matches: the whole stream inflates, then fails.
    gz[gz.length - 8] = gz[gz.length - 8]! ^ 0xff;
    return gz;
  })();
  const overLimit = pushBody('x'.repeat(4 * 2 ** 20 + 10));
  let deep = '1';
  for (let k = 0; k < 100; k++) deep = `[${deep}]`;
  const idempotencyBody = (n: number): string => pushBody({ n }, 'soak-junk:idem');
  let idemSent = 0;

  const wrongSecret = await token('soak-bad', ['soak:*'], {
    secret: 'not-the-bench-secret-0123456789abcdef-0123',
  });
  const expired = await token('soak-bad', ['soak:*'], { exp: Math.floor(Date.now() / 1000) - 60 });
  const refusedToken =
    (auth: Record<string, unknown>, codes: string[]) =>
    async (url: string): Promise<Outcome> => {
      const socket = io(url, {
        auth,
        transports: ['websocket'],
        reconnection: false,
        forceNew: true,
      });
      sockets.add(socket);
      try {
        const result = await new Promise<string>((resolve) => {
          socket.once('connect', () => resolve('connected'));
          socket.once('connect_error', (err: Error & { data?: { code?: string } }) =>
            resolve(`${err.message}/${err.data?.code}`),
          );
          setTimeout(() => resolve('no answer in 5 s'), 5000);
        });
        return { ok: codes.some((c) => result === `unauthorized/${c}`), what: result };
      } finally {
        socket.close();
        sockets.delete(socket);
      }
    };

  // One socket per node that keeps sending junk events; each must be answered, and the socket
  // must stay connected.
  const junkJwt = await token('soak-junk', ['soak-junk:*']);
  const junkSockets = nodes.map((n) => {
    const socket = io(n.url, {
      auth: { token: junkJwt },
      transports: ['websocket'],
      forceNew: true,
    });
    sockets.add(socket);
    return socket;
  });
  const junkEvents: Array<[string, unknown[], (ack: unknown) => boolean]> = [
    ['join', [42], (a) => isRefusal(a, 'invalid_request')],
    ['join', [{ channel: 'soak:0' }], (a) => isRefusal(a, 'forbidden')],
    ['join', [{ channel: 'no spaces!' }], (a) => isRefusal(a, 'invalid_channel')],
    ['join', [{ channel: 'x'.repeat(100_000) }], (a) => isRefusal(a, 'invalid_channel')],
    ['join', [{ channel: 'soak-junk:1', since: 'not-an-offset' }], (a) => isOk(a)],
    ['leave', [null], (a) => isRefusal(a, 'invalid_request')],
    ['refresh', [{ token: 'not-a-jwt' }], (a) => isRefusal(a, 'unauthorized')],
    ['refresh', [], (a) => isRefusal(a, 'unauthorized')],
  ];
  let junkRound = 0;
  const junk = async (url: string): Promise<Outcome> => {
    const socket = junkSockets[nodes.findIndex((n) => n.url === url)]!;
    if (!socket.connected) return { ok: false, what: 'junk socket not connected' };
    // Events without an acknowledgement, and an unknown event: nothing to answer, nothing to break.
    socket.emit('join', { channel: 'soak-junk:2' });
    socket.emit('no-such-event', { a: 1 });
    const [event, args, check] = junkEvents[junkRound++ % junkEvents.length]!;
    let ack: unknown;
    try {
      ack = await socket.timeout(5000).emitWithAck(event, ...args);
    } catch {
      return { ok: false, what: `${event}: no answer in 5 s` };
    }
    // Rate-limited is a fine answer too: the socket sends more than a browser would.
    const ok = check(ack) || isRefusal(ack, 'rate_limited');
    return { ok: ok && socket.connected, what: `${event}: ${JSON.stringify(ack).slice(0, 100)}` };
  };

  const kinds: Array<[string, (url: string) => Promise<Outcome>]> = [
    ['invalid JSON', expectStatus([400], (u) => post(u, '{"channel":"soak-junk:0","event":'))],
    ['data over its limit', expectStatus([413], (u) => post(u, pushBody('x'.repeat(70_000))))],
    ['body over the limit', expectStatus([413], (u) => post(u, overLimit))],
    [
      'wrong API key',
      expectStatus([401], (u) =>
        post(u, pushBody(1), { ...good, authorization: 'Bearer not-the-key-0123456789' }),
      ),
    ],
    [
      'no API key',
      expectStatus([401], (u) => post(u, pushBody(1), { 'content-type': 'application/json' })),
    ],
    [
      'text/plain',
      expectStatus([415], (u) => post(u, pushBody(1), { ...good, 'content-type': 'text/plain' })),
    ],
    [
      'nested 100 deep',
      expectStatus([422], (u) => post(u, `{"channel":"soak-junk:0","event":"e","data":${deep}}`)),
    ],
    [
      'corrupt gzip',
      expectStatus([400], (u) => post(u, corruptGzip, { ...good, 'content-encoding': 'gzip' })),
    ],
    ['invalid channel', expectStatus([422], (u) => post(u, pushBody(1, 'no spaces!')))],
    ['batch of junk', expectStatus([422], (u) => post(u, '{"pushes":5}', good, '/api/push/batch'))],
    [
      'Idempotency-Key reused for another body',
      // The first is accepted (to a channel nobody listens to); every later one is refused.
      async (u) => {
        const first = idemSent === 0;
        const status = await post(u, idempotencyBody(idemSent++), {
          ...good,
          'idempotency-key': 'soak-junk-key',
        });
        return { ok: status === (first ? 200 : 422), what: String(status) };
      },
    ],
    ['token: garbage', refusedToken({ token: 'garbage' }, ['invalid_token'])],
    ['token: wrong secret', refusedToken({ token: wrongSecret }, ['invalid_signature'])],
    ['token: expired', refusedToken({ token: expired }, ['token_expired'])],
    ['token: none', refusedToken({}, ['missing_token'])],
    ['junk socket events', junk],
  ];
  const stats = new Map<string, { sent: number; unexpected: number; samples: string[] }>(
    kinds.map(([k]) => [k, { sent: 0, unexpected: 0, samples: [] }]),
  );
  const done = (async () => {
    for (let i = 0; running(); i++) {
      const [kind, send] = kinds[i % kinds.length]!;
      const stat = stats.get(kind)!;
      stat.sent += 1;
      let outcome: Outcome;
      try {
        outcome = await send(pick(nodes).url);
      } catch (err) {
        outcome = { ok: false, what: String(err) };
      }
      if (!outcome.ok) {
        stat.unexpected += 1;
        if (stat.samples.length < 5) stat.samples.push(outcome.what);
      }
      await sleep(250);
    }
    for (const socket of junkSockets) {
      socket.close();
      sockets.delete(socket);
    }
  })();
  const total = (f: (s: { sent: number; unexpected: number }) => number): number =>
    [...stats.values()].reduce((a, s) => a + f(s), 0);
  return {
    done,
    sent: () => total((s) => s.sent),
    unexpected: () => total((s) => s.unexpected),
    summary: () => Object.fromEntries(stats),
  };
}

function isRefusal(ack: unknown, error: string): boolean {
  return (
    typeof ack === 'object' &&
    ack !== null &&
    (ack as { ok?: unknown }).ok === false &&
    (ack as { error?: unknown }).error === error
  );
}

function isOk(ack: unknown): boolean {
  return typeof ack === 'object' && ack !== null && (ack as { ok?: unknown }).ok === true;
}
