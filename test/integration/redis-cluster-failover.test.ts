import { describe, expect, it } from 'vitest';
import { slotOf, slotOfChannel } from '../../src/backend/redis/slots.js';
import { createClient, type PushcastClient } from '../../src/client/index.js';
import type { ChannelMessage } from '../../src/delivery/message.js';
import { until } from '../support/assertions.js';
import { useNodesOnRedisCluster } from '../support/cluster.js';
import {
  connectClient,
  postJson,
  startNode,
  token,
  type TestClient,
  type TestNode,
} from '../support/nodes.js';

/**
 * A Redis Cluster master killed (SIGKILL) under steady publishing from three nodes, with
 * subscribers on two of them: its replica takes over (cluster-node-timeout 1 s), the nodes move their
 * subscriptions to it and report ready again, and then:
 *
 * - every push was answered 200 or 503, each within a bound (never a hang);
 * - every push answered 200 reached every subscriber of its channels (a 200 waited for a replica
 *   to hold it, so the failover did not lose it);
 * - what subscribers missed live while their shard was failing over was filled from history by
 *   their node: each socket saw each channel's offsets without a gap, in order, nothing twice,
 *   and no socket had to reconnect;
 * - an SDK subscriber saw each channel exactly once and in order.
 */
describe('a Redis Cluster master killed under steady publishing (3 masters + 3 replicas)', () => {
  const COMMAND_TIMEOUT_MS = 1000;
  const config = {
    redis: { commandTimeoutMs: COMMAND_TIMEOUT_MS },
    limits: { pushesPerSecond: 1e6, pushBurst: 1e6 },
    history: { size: 1000, ttlS: 120 },
  };
  const cluster = useNodesOnRedisCluster({ masters: 3, replicas: 1, nodes: 2, config });
  /** The channels of the other masters than `victim`. */
  const channels0 = (byMaster: Map<number, string>, victim: number): string[] =>
    [...byMaster].filter(([m]) => m !== victim).map(([, ch]) => ch);

  interface Answer {
    status: number;
    ms: number;
    id?: string;
    channels: string[];
  }

  it('answers 200 or 503 in bounded time, delivers every 200, and fills what sockets missed live', async () => {
    const run = Math.random().toString(36).slice(2, 7);
    // One channel per master.
    const masterOf = await cluster.redis.slotMasters();
    const masters = await cluster.redis.masters();
    const byMaster = new Map<number, string>();
    for (let i = 0; byMaster.size < masters.length; i++) {
      const channel = `fo:${run}-${i}`;
      const master = masterOf(slotOfChannel(channel));
      if (!byMaster.has(master)) byMaster.set(master, channel);
    }
    // The victim: a master that does not serve the adapter's request channel (every node
    // subscribes to it), so a node without rooms on the victim keeps serving through the kill.
    const requestMaster = masterOf(slotOf('socket.io#/#'));
    const victim = masters.find((m) => m !== requestMaster)!;
    const channels = [byMaster.get(victim)!, ...channels0(byMaster, victim)];

    // A third node that only publishes, none of its own subscriptions on the victim: it keeps
    // taking pushes while the subscribers' nodes move their subscriptions to the new master,
    // so there are pushes they miss live and fill from history.
    const ownChannels = async (): Promise<string[]> =>
      (
        (await cluster.redis.command(
          victim,
          'PUBSUB',
          'SHARDCHANNELS',
          'socket.io#/#*',
        )) as string[]
      ).filter((name) => !name.startsWith('socket.io#/#{'));
    let extra: TestNode | undefined;
    for (let attempt = 0; attempt < 12 && !extra; attempt++) {
      const before = await ownChannels();
      const node = await startNode({ redisClusterNodes: cluster.redis.seeds, ...config });
      if ((await ownChannels()).length > before.length) await node.stop();
      else extra = node;
    }
    expect(extra).toBeDefined();
    const publishingNodes = [...cluster.nodes, extra!];

    // Subscribers: a plain socket on each node, and an SDK client.
    const sockets: TestClient[] = [];
    const closed: string[] = [];
    for (const node of cluster.nodes) {
      const c = await connectClient(node.url, {
        token: await token({ sub: 'u', channels }),
      });
      for (const ch of channels) expect(await c.join(ch)).toMatchObject({ ok: true });
      c.socket.on('disconnect', (reason) => closed.push(reason));
      sockets.push(c);
    }
    const sdkSeen = new Map<string, ChannelMessage[]>(channels.map((ch) => [ch, []]));
    const sdkJoined = new Set<string>();
    const sdk: PushcastClient = createClient(cluster.nodes[1]!.url, {
      token: await token({ sub: 'sdk', channels }),
      transports: ['websocket'],
    });
    for (const ch of channels)
      sdk.subscribe(ch, {
        onMessage: (m) => sdkSeen.get(ch)!.push(m as unknown as ChannelMessage),
        onJoin: () => sdkJoined.add(ch),
      });
    await until(() => sdkJoined.size === channels.length, 5000, 'the SDK joins');

    // Steady publishing from both nodes: single-channel pushes round robin, and every fifth a
    // push to all three shards at once; every push with its own Idempotency-Key.
    const answers: Answer[] = [];
    let publishing = true;
    const publisher = async (node: TestNode, p: number): Promise<void> => {
      for (let i = 0; publishing; i++) {
        const target = i % 5 === 4 ? channels : [channels[i % channels.length]!];
        const started = Date.now();
        const res = await postJson(
          `${node.url}/api/push`,
          { channel: target, event: 'e', data: { p, i } },
          { 'idempotency-key': `${run}-${p}-${i}` },
        );
        answers.push({
          status: res.status,
          ms: Date.now() - started,
          id: res.status === 200 ? (res.body.id as string) : undefined,
          channels: target,
        });
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    const publishers = publishingNodes.map((node, p) => publisher(node, p));
    const ok = () => answers.filter((a) => a.status === 200).length;

    await until(() => ok() >= 40, 10_000, 'pushes before the kill');
    const beforeKill = answers.length;
    await cluster.redis.kill(victim, 'SIGKILL');
    await cluster.redis.waitHealthy(20_000);
    const readyz = async (node: TestNode) => (await fetch(`${node.url}/readyz`)).status;
    await until(
      async () => (await Promise.all(cluster.nodes.map(readyz))).every((s) => s === 200),
      20_000,
      'both nodes ready again',
    );
    expect(await cluster.redis.masters()).not.toContain(victim);
    const afterFailover = ok();
    await until(() => ok() >= afterFailover + 40, 10_000, 'pushes after the failover');
    publishing = false;
    await Promise.all(publishers);

    // 200 or 503, never anything else, never a hang.
    expect(new Set(answers.map((a) => a.status))).toEqual(new Set([200, 503]));
    expect(Math.max(...answers.map((a) => a.ms))).toBeLessThan(COMMAND_TIMEOUT_MS * 2 + 1000);
    // The kill was felt.
    expect(answers.slice(beforeKill).some((a) => a.status === 503)).toBe(true);

    // A sentinel on each channel, then everything answered 200 must be there.
    const sentinels = new Map<string, string>();
    for (const ch of channels) {
      const res = await postJson(`${cluster.nodes[0]!.url}/api/push`, {
        channel: ch,
        event: 'sentinel',
        data: null,
      });
      expect(res.status).toBe(200);
      sentinels.set(ch, res.body.id as string);
    }
    const expected = new Map<string, Set<string>>(channels.map((ch) => [ch, new Set()]));
    for (const a of answers)
      if (a.status === 200) for (const ch of a.channels) expected.get(ch)!.add(a.id!);

    const check = (seen: (ch: string) => ChannelMessage[], who: string): void => {
      for (const ch of channels) {
        const got = seen(ch);
        const ids = got.map((m) => m.id);
        // Nothing twice.
        expect(new Set(ids).size, `${who} ${ch}: duplicates`).toBe(ids.length);
        // Every 200.
        const missing = [...expected.get(ch)!].filter((id) => !ids.includes(id));
        expect(missing, `${who} ${ch}: pushes answered 200 not delivered`).toEqual([]);
        // No gap, in order: consecutive offsets in one history.
        const offsets = got.map((m) => m.offset!);
        expect(new Set(offsets.map((o) => o.split(':')[0])).size).toBe(1);
        const ns = offsets.map((o) => Number(o.split(':')[1]));
        expect(ns, `${who} ${ch}: offsets`).toEqual(ns.map((_, k) => ns[0]! + k));
      }
    };
    for (const [k, c] of sockets.entries()) {
      await until(
        () => channels.every((ch) => c.messages.some((m) => m.id === sentinels.get(ch))),
        10_000,
        `node ${k}'s socket to see every sentinel`,
      );
      check((ch) => c.messages.filter((m) => m.channel === ch), `socket on node ${k}`);
    }
    // Filled by the nodes themselves: no socket had to reconnect.
    expect(closed).toEqual([]);
    await until(
      () => channels.every((ch) => sdkSeen.get(ch)!.some((m) => m.id === sentinels.get(ch))),
      10_000,
      'the SDK to see every sentinel',
    );
    check((ch) => sdkSeen.get(ch)!, 'SDK');
    sdk.close();
    for (const c of sockets) c.close();
    await extra!.stop();
  }, 90_000);
});
