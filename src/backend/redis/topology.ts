import type { EventEmitter } from 'node:events';
import type { Cluster, Redis } from 'ioredis';
import { slotOf } from './slots.js';

/**
 * Where this node's Redis traffic goes, one Redis or a Redis Cluster, seen from what the bus and
 * the adapter need: which subscriber connection carries a shard channel (to prove a subscription
 * active, or that every message published before a moment has arrived), and which master holds
 * a slot and how many replicas it has (to wait for a write to reach one).
 */
export interface Topology {
  readonly cluster: boolean;
  /**
   * The subscriber connection that receives this (shard) channel's messages, when it is
   * connected or connecting; undefined otherwise (lost, or a failover in progress).
   */
  subscriberFor(channel: string): Redis | undefined;
  /** The publish-side connection to the master of a slot (one Redis: the one connection). */
  masterOf(slot: number): Redis | undefined;
  /** Replicas in sync with the master of a slot, as it last said (one Redis: 0). */
  replicasOf(slot: number): number;
  /** Stops any background work. */
  close(): void;
}

/** One Redis: one publisher, one subscriber, no replicas to wait for. */
export function standaloneTopology(pub: Redis, sub: Redis): Topology {
  return {
    cluster: false,
    subscriberFor: () => (sub.status === 'ready' ? sub : undefined),
    masterOf: () => (pub.status === 'ready' ? pub : undefined),
    replicasOf: () => 0,
    close: () => undefined,
  };
}

/**
 * The parts of ioredis' Cluster (6.x, `shardedSubscribers: true`) this module reads: the group
 * holding one sharded subscriber per master, and the emitter it reports topology events on.
 * Private in ioredis' typings; {@link clusterTopology} checks their shape once at start, so an
 * ioredis upgrade that changes them stops the node at start rather than misbehaving later
 * (test/integration/redis-cluster.test.ts runs it).
 */
interface ShardedSubscriberLike {
  getInstance(): Redis | null;
}
interface ClusterInternals {
  shardedSubscribers?: {
    getResponsibleSubscriber(slot: number): ShardedSubscriberLike | undefined;
  };
  subscriberGroupEmitter?: EventEmitter;
}

/** How often each master is asked how many replicas are in sync with it. */
const REPLICA_REFRESH_MS = 2000;

/** Online replicas in an `INFO replication` answer. */
function onlineReplicas(info: string): number {
  return info.split('\n').filter((line) => /^slave\d+:.*state=online/.test(line)).length;
}

/**
 * A Redis Cluster: publisher and sharded subscriber as ioredis routes them. Replicas are counted
 * as each master reports them (`INFO replication`, every 2 s): CLUSTER SLOTS leaves out a replica
 * until it has replicated a first write, and a replica that died must stop being waited for at
 * once. Call {@link ClusterTopology.refreshReplicas} once before serving.
 */
export function clusterTopology(pub: Cluster, sub: Cluster): ClusterTopology {
  const internals = sub as unknown as ClusterInternals;
  const group = internals.shardedSubscribers;
  const emitter = internals.subscriberGroupEmitter;
  if (typeof group?.getResponsibleSubscriber !== 'function' || !emitter?.on)
    throw new Error(
      'this ioredis version does not expose the sharded subscriber group pushcast relies on (ioredis 6, shardedSubscribers)',
    );
  const masterKey = (slot: number): string | undefined => pub.slots[slot]?.[0];
  const replicas = new Map<string, number>();
  const refreshReplicas = async (): Promise<void> => {
    await Promise.all(
      pub.nodes('master').map(async (node) => {
        const key = `${node.options.host}:${node.options.port}`;
        try {
          replicas.set(key, onlineReplicas(await node.info('replication')));
        } catch {
          // Unreachable: its slots fail over or come back; asked again at the next round.
        }
      }),
    );
  };
  const timer = setInterval(() => void refreshReplicas(), REPLICA_REFRESH_MS);
  timer.unref();
  return {
    cluster: true,
    groupEvents: emitter,
    refreshReplicas,
    close: () => clearInterval(timer),
    subscriberFor(channel) {
      let instance: Redis | null | undefined;
      try {
        // Starts the slot's subscriber if it is idle (ioredis connects them lazily).
        instance = group.getResponsibleSubscriber(slotOf(channel))?.getInstance();
      } catch {
        // No slot map yet (reconnecting from scratch).
        return undefined;
      }
      // Connecting counts: commands queue on it (callers bound their waits); an ended one
      // waits for the group to replace it.
      return instance && !['end', 'close', 'disconnecting'].includes(instance.status)
        ? instance
        : undefined;
    },
    masterOf(slot) {
      const key = masterKey(slot);
      if (key === undefined) return undefined;
      return pub
        .nodes('master')
        .find((node) => `${node.options.host}:${node.options.port}` === key);
    },
    replicasOf(slot) {
      const key = masterKey(slot);
      return key === undefined ? 0 : (replicas.get(key) ?? 0);
    },
  };
}

/** A Redis Cluster topology, with the subscriber group's own events (`moved`, `-node`). */
export interface ClusterTopology extends Topology {
  readonly groupEvents: EventEmitter;
  /** Asks every master now how many replicas are in sync with it. */
  refreshReplicas(): Promise<void>;
}
