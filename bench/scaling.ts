/**
 * The figures SCALING.md is built from (`npm run bench -- scaling`), on a real Redis Cluster of
 * three masters on loopback:
 *
 *   shard     what one push costs the Redis that holds its channel: the publish script as the
 *             nodes run it (offset, history, recent ids, SPUBLISH), driven flat out on one master
 *             from this process; Redis CPU per push and pushes per second of one Redis core, as
 *             the number of nodes subscribed to the channel grows, and as one node holds more
 *             channels; next to classic pub/sub on one Redis, where every node gets every push
 *   node      one node on the cluster: push API throughput and latency (50 concurrent
 *             publishers over 100 channels on every shard), and the Redis CPU it costs; then
 *             deliveries per second one node takes with 2,000 sockets on 20 channels
 *
 * Loopback, two cores shared by Redis, the nodes and the load: the per-push CPU figures hold
 * elsewhere, the throughput ones are floors.
 */
import { Redis } from 'ioredis';
import { io, type Socket } from 'socket.io-client';
import { adapterChannelFor, envelopeFor } from '../src/backend/redis/envelope.js';
import { PUBLISH_SCRIPT } from '../src/backend/redis/scripts.js';
import { slotOfChannel } from '../src/backend/redis/slots.js';
import { messageHead } from '../src/delivery/message.js';
import { roomOf } from '../src/delivery/names.js';
import { newEpoch } from '../src/delivery/offset.js';
import { startRedis, startRedisCluster, type RedisClusterFixture } from '../test/support/redis.js';
import { details, pct, push, record, sleep, startNode, stop, token } from './support.js';

/** Pushes per measured configuration, and how many the load keeps in flight. */
const SCRIPT_PUSHES = Number(process.env.BENCH_SCALING_PUSHES ?? 20_000);
const IN_FLIGHT = 64;
/** A push's data: about 100 bytes of JSON, as in the README's channel cost figures. */
const DATA = JSON.stringify({ text: 'x'.repeat(80), n: 1 });

/** Redis CPU seconds so far (user + system) of the server on `port`. */
async function redisCpu(admin: Redis): Promise<number> {
  const info = await admin.info('cpu');
  const user = Number(/used_cpu_user:([\d.]+)/.exec(info)?.[1] ?? 0);
  const sys = Number(/used_cpu_sys:([\d.]+)/.exec(info)?.[1] ?? 0);
  return user + sys;
}

type Publish = (numKeys: number, ...args: Array<string | number>) => Promise<unknown>;

/**
 * Runs the publish script `SCRIPT_PUSHES` times on `client` for channels picked by `channelOf`,
 * `IN_FLIGHT` at a time; answers pushes per second and Redis CPU microseconds per push.
 */
async function drive(
  client: Redis,
  admin: Redis,
  mode: 'sharded' | 'classic',
  dedupe: boolean,
  channelOf: (i: number) => string,
): Promise<{ perS: number; cpuUs: number }> {
  const scripted = client as Redis & { pushcastPublish?: Publish };
  if (!scripted.pushcastPublish) client.defineCommand('pushcastPublish', { lua: PUBLISH_SCRIPT });
  const publish = (scripted as Redis & { pushcastPublish: Publish }).pushcastPublish.bind(client);
  const epoch = newEpoch();
  const one = (i: number): Promise<unknown> => {
    const channel = channelOf(i);
    const room = roomOf(channel);
    const env = envelopeFor(mode, room);
    const id = `BENCH${String(i).padStart(21, '0')}`;
    const keys = [`bench:{${channel}}:m`, `bench:{${channel}}:s`];
    if (dedupe) keys.push(`bench:{${channel}}:i`);
    return publish(
      keys.length,
      ...keys,
      Date.now() + 60_000,
      mode === 'sharded' ? 's' : 'p',
      dedupe ? '1' : '0',
      10_000,
      adapterChannelFor(room),
      messageHead(channel, 'e', DATA, id, Date.now()),
      100,
      300,
      epoch,
      env.head,
      env.tail,
      id,
    );
  };
  // Warm up (script cache, connections).
  await Promise.all([...Array(IN_FLIGHT).keys()].map((i) => one(i)));
  const cpu0 = await redisCpu(admin);
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    [...Array(IN_FLIGHT).keys()].map(async () => {
      while (next < SCRIPT_PUSHES) await one(next++);
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const cpu = (await redisCpu(admin)) - cpu0;
  return { perS: SCRIPT_PUSHES / seconds, cpuUs: (cpu / SCRIPT_PUSHES) * 1e6 };
}

/** `n` subscriber connections (as `n` nodes), each subscribed to `channels` on `port`. */
async function subscribers(
  port: number,
  n: number,
  channels: string[],
  mode: 'sharded' | 'classic',
): Promise<{ received: () => number; close: () => void }> {
  let received = 0;
  const clients: Redis[] = [];
  for (let k = 0; k < n; k++) {
    const sub = new Redis({ host: '127.0.0.1', port });
    if (mode === 'sharded') {
      sub.on('smessageBuffer', () => (received += 1));
      // One SSUBSCRIBE per channel: several in one must share a slot.
      await Promise.all(channels.map((c) => sub.ssubscribe(adapterChannelFor(roomOf(c)))));
    } else {
      sub.on('pmessageBuffer', () => (received += 1));
      await sub.psubscribe('socket.io#/#*');
    }
    clients.push(sub);
  }
  return { received: () => received, close: () => clients.forEach((c) => c.disconnect()) };
}

/** Channel names whose slot the master on `port` serves. */
async function channelsOn(
  cluster: RedisClusterFixture,
  port: number,
  prefix: string,
  n: number,
): Promise<string[]> {
  const masterOf = await cluster.slotMasters();
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) {
    const channel = `${prefix}${i}`;
    if (masterOf(slotOfChannel(channel)) === port) out.push(channel);
  }
  return out;
}

async function shardCost(cluster: RedisClusterFixture): Promise<void> {
  const [port] = await cluster.masters();
  const client = new Redis({ host: '127.0.0.1', port: port! });
  const admin = new Redis({ host: '127.0.0.1', port: port! });
  const figures: Record<string, { perS: number; cpuUs: number }> = {};
  try {
    const [hot] = await channelsOn(cluster, port!, 'hot:', 1);
    // Nodes subscribed to the pushed channel (the nodes that hold sockets on it).
    for (const nodes of [0, 1, 2, 4, 8, 16]) {
      const subs = await subscribers(port!, nodes, [hot!], 'sharded');
      const r = await drive(client, admin, 'sharded', true, () => hot!);
      await sleep(200);
      subs.close();
      figures[`sharded, ${nodes} nodes subscribed`] = r;
      record(
        'scaling: one shard',
        `${nodes} nodes on the channel: Redis CPU per push`,
        r.cpuUs,
        'µs',
      );
      record('scaling: one shard', `${nodes} nodes on the channel: pushes/s`, r.perS, 'push/s');
    }
    // One node holding many channels of this shard, pushes spread over all of them.
    for (const held of [1, 1000, 10_000]) {
      const channels = await channelsOn(cluster, port!, `many${held}:`, held);
      const subs = await subscribers(port!, 1, channels, 'sharded');
      const r = await drive(client, admin, 'sharded', true, (i) => channels[i % held]!);
      await sleep(200);
      subs.close();
      figures[`sharded, 1 node holding ${held} channels`] = r;
      record(
        'scaling: one shard',
        `1 node holding ${held} channels: Redis CPU per push`,
        r.cpuUs,
        'µs',
      );
    }
    // What the recent-id set (dedupe, Redis Cluster only) costs: the same push without it.
    const noDedupe = await drive(client, admin, 'sharded', false, () => hot!);
    figures['sharded, no recent-id set (one Redis)'] = noDedupe;
    record(
      'scaling: one shard',
      'without the recent-id set: Redis CPU per push',
      noDedupe.cpuUs,
      'µs',
    );
  } finally {
    client.disconnect();
    admin.disconnect();
  }

  // Classic pub/sub (one Redis only): every node receives every push, held or not.
  const single = await startRedis();
  const sclient = new Redis(single.url);
  const sadmin = new Redis(single.url);
  try {
    for (const nodes of [1, 4, 16]) {
      const subs = await subscribers(single.port, nodes, [], 'classic');
      const r = await drive(sclient, sadmin, 'classic', false, (i) => `c${i % 100}`);
      await sleep(200);
      const perNode = subs.received() / nodes / (SCRIPT_PUSHES + IN_FLIGHT);
      subs.close();
      figures[`classic, ${nodes} nodes`] = r;
      record('scaling: classic', `${nodes} nodes: Redis CPU per push`, r.cpuUs, 'µs');
      record(
        'scaling: classic',
        `${nodes} nodes: share of pushes each node receives`,
        perNode,
        'ratio',
      );
    }
  } finally {
    sclient.disconnect();
    sadmin.disconnect();
    await single.stop();
  }
  details.scalingShard = figures;
}

/** Redis CPU seconds of every master together. */
async function clusterCpu(admins: Redis[]): Promise<number> {
  return (await Promise.all(admins.map(redisCpu))).reduce((a, b) => a + b, 0);
}

/**
 * Scripts (and WAITs) the clients sent every master so far, all together: a push is scripts only,
 * and INFO commandstats also counts the commands the scripts run, so those are left out.
 */
async function clusterCalls(admins: Redis[]): Promise<number> {
  let calls = 0;
  const top = new Set(['evalsha', 'eval', 'wait']);
  for (const admin of admins) {
    const info = await admin.info('commandstats');
    for (const m of info.matchAll(/^cmdstat_(\w+):calls=(\d+)/gm))
      if (top.has(m[1]!)) calls += Number(m[2]);
  }
  return calls;
}

async function nodeThroughput(cluster: RedisClusterFixture): Promise<void> {
  const env = { REDIS_CLUSTER_NODES: cluster.seeds.join(','), LOG_LEVEL: 'warn' };
  const admins = (await cluster.masters()).map((port) => new Redis({ host: '127.0.0.1', port }));
  const node = await startNode(env);
  const other = await startNode(env);
  try {
    // API: 50 concurrent publishers on one node, 100 channels on every shard.
    const pushes = Number(process.env.BENCH_PUSHES ?? 3000);
    const latencies: number[] = [];
    let failures = 0;
    let next = 0;
    // What the masters burn idle (cluster bus, cron), to take out of the per-push figure.
    const idle0 = await clusterCpu(admins);
    await sleep(2000);
    const idlePerS = ((await clusterCpu(admins)) - idle0) / 2;
    const calls0 = await clusterCalls(admins);
    const cpu0 = await clusterCpu(admins);
    const perMaster0 = await Promise.all(admins.map(redisCpu));
    const t0 = performance.now();
    await Promise.all(
      [...Array(50).keys()].map(async () => {
        while (next < pushes) {
          const i = next++;
          const s = performance.now();
          if ((await push(node.url, `api:${i % 100}`, { i })) !== 200) failures += 1;
          latencies.push(performance.now() - s);
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    const cpu = (await clusterCpu(admins)) - cpu0 - idlePerS * seconds;
    const calls = (await clusterCalls(admins)) - calls0;
    const perMaster = (await Promise.all(admins.map(redisCpu))).map(
      (c, k) => ((c - perMaster0[k]! - (idlePerS / admins.length) * seconds) / pushes) * 1e6,
    );
    record('scaling: one node (cluster)', 'API pushes/s', pushes / seconds, 'push/s');
    record('scaling: one node (cluster)', 'API latency p50', pct(latencies, 50), 'ms');
    record('scaling: one node (cluster)', 'API latency p99', pct(latencies, 99), 'ms');
    record('scaling: one node (cluster)', 'non-200 answers', failures, 'count');
    record(
      'scaling: one node (cluster)',
      'Redis CPU per API push (all masters)',
      (cpu / pushes) * 1e6,
      'µs',
    );
    record('scaling: one node (cluster)', 'Redis scripts per API push', calls / pushes, 'calls');
    // The per-key rate limit lives in one slot: its master does more than the others.
    record(
      'scaling: one node (cluster)',
      'busiest master CPU per API push',
      Math.max(...perMaster),
      'µs',
    );
    record(
      'scaling: one node (cluster)',
      'other masters CPU per API push',
      Math.min(...perMaster),
      'µs',
    );
    record(
      'scaling: one node (cluster)',
      'Redis idle CPU (3 masters)',
      idlePerS * 100,
      '% of a core',
    );

    // Deliveries: 2,000 sockets on 20 channels on `node`, pushes made on `other`.
    const SOCKETS = 2000;
    const CHANNELS = 20;
    let received = 0;
    const sockets: Socket[] = [];
    for (let start = 0; start < SOCKETS; start += 200) {
      const batch = await Promise.all(
        [...Array(200).keys()].map(async (k) => {
          const i = start + k;
          const channel = `fan:${i % CHANNELS}`;
          const jwt = await token(`scale-${i}`, [channel]);
          return new Promise<Socket>((resolve, reject) => {
            const s = io(node.url, {
              auth: { token: jwt },
              transports: ['websocket'],
              reconnection: false,
              forceNew: true,
            });
            s.on('msg', () => (received += 1));
            s.once('connect', () => s.emit('join', { channel }, () => resolve(s)));
            s.once('connect_error', reject);
          });
        }),
      );
      sockets.push(...batch);
    }
    const fanPushes = 600;
    let sent = 0;
    const r0 = received;
    const t1 = performance.now();
    await Promise.all(
      [...Array(20).keys()].map(async () => {
        while (sent < fanPushes) {
          const i = sent++;
          await push(other.url, `fan:${i % CHANNELS}`, { i });
        }
      }),
    );
    const expected = fanPushes * (SOCKETS / CHANNELS);
    const deadline = Date.now() + 30_000;
    while (received - r0 < expected && Date.now() < deadline) await sleep(10);
    const fanSeconds = (performance.now() - t1) / 1000;
    record(
      'scaling: one node (cluster)',
      'deliveries/s (2,000 sockets, 20 channels)',
      (received - r0) / fanSeconds,
      'msg/s',
    );
    record(
      'scaling: one node (cluster)',
      'deliveries missing',
      expected - (received - r0),
      'count',
    );
    for (const s of sockets) s.close();
  } finally {
    for (const a of admins) a.disconnect();
    await Promise.all([stop(node.child), stop(other.child)]);
  }
}

/** The scaling scenario: one Redis Cluster (3 masters), then each part in turn. */
export async function scaling(): Promise<void> {
  const cluster = await startRedisCluster({ masters: 3 });
  try {
    await shardCost(cluster);
    await nodeThroughput(cluster);
  } finally {
    await cluster.stop();
  }
}
