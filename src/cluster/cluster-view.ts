import type { Server } from 'socket.io';
import { channelOfRoom } from '../delivery/names.js';
import { answerRequests, askOtherNodes } from './server-requests.js';

/** What one node reports about itself. */
export interface NodeStats {
  id: string;
  version: string;
  uptimeS: number;
  state: string;
  sockets: number;
  channels: number;
  subscriptions: number;
  inflight: number;
  /** Pushes accepted / messages written per second, over the last 10 and 60 seconds. */
  rates: { requested10s: number; requested60s: number; delivered10s: number; delivered60s: number };
}

/**
 * Connections of this node that are not engine.io sockets (the connection hub's: direct Socket.IO
 * WebSockets and Phoenix connections): counted with the sockets everywhere the view counts
 * (stats, subscribers, occupied channels, presence).
 */
export interface LocalConnections {
  /** Connections on this node. */
  readonly size: number;
  /** Connections in the room on this node. */
  count(room: string): number;
  /** Rooms with at least one of these connections. */
  rooms(): Iterable<string>;
  /** The user of each connection in the room (undefined: anonymous). */
  users(room: string): Iterable<string | undefined>;
}

/** What the node knows of itself beyond its sockets (which the view counts). */
export type NodeBasics = Omit<NodeStats, 'sockets' | 'channels' | 'subscriptions'>;

/**
 * Cluster-wide answers (stats, subscriber counts, occupied channels, presence): each node answers
 * for its own sockets through the adapter's server-side requests, and the asking node adds them
 * up. A node that crashed drops out as soon as Redis sees its connection close.
 */
export class ClusterView {
  constructor(
    private readonly io: Server,
    private readonly basics: () => NodeBasics,
    /** Single node: undefined. Otherwise whether the cluster bus can carry requests now. */
    private readonly clusterReady: (() => boolean) | undefined,
    /** The connection hub's connections (direct Socket.IO, Phoenix), counted with the sockets. */
    private readonly others?: LocalConnections,
  ) {
    answerRequests(io, 'pushcast:stats', () => this.localStats());
    answerRequests(io, 'pushcast:count', (room) => this.localCount(String(room)));
    answerRequests(io, 'pushcast:rooms', (prefix) => this.localRooms(String(prefix)));
    answerRequests(io, 'pushcast:presence', (room) => this.localPresence(String(room)));
  }

  /** Every live node's stats, this one first. */
  async stats(): Promise<NodeStats[]> {
    return [this.localStats(), ...(await this.ask<NodeStats>('pushcast:stats'))];
  }

  /** This node's stats. */
  localStats(): NodeStats {
    const { channels, subscriptions } = this.occupancy();
    const sockets = this.io.of('/').sockets.size + (this.others?.size ?? 0);
    return { ...this.basics(), sockets, channels, subscriptions };
  }

  /** Occupied channels and channel subscriptions on this node. */
  occupancy(): { channels: number; subscriptions: number } {
    return occupancyOf(this.io, this.others);
  }

  /** Sockets subscribed to a room across the cluster. */
  async subscribers(room: string): Promise<number> {
    const others = await this.ask<number>('pushcast:count', room);
    return others.reduce((a, n) => a + n, this.localCount(room));
  }

  /** Occupied channels (optionally by prefix) with their subscriber counts, across the cluster. */
  async channels(prefix: string): Promise<Map<string, number>> {
    const others = await this.ask<Record<string, number>>('pushcast:rooms', prefix);
    return sumCounts([this.localRooms(prefix), ...others]);
  }

  /** Connected users of a room (by user id) with their connection counts, across the cluster. */
  async presence(room: string): Promise<Map<string, number>> {
    const others = await this.ask<Record<string, number>>('pushcast:presence', room);
    return sumCounts([this.localPresence(room), ...others]);
  }

  /** Asks every other node; a node that does not answer in time is left out, not waited for. */
  private async ask<T>(event: string, ...args: unknown[]): Promise<T[]> {
    // Redis away: the other nodes cannot be asked (503), rather than counting this node alone.
    return (await askOtherNodes<T>(this.io, this.clusterReady, event, args)).answers;
  }

  private localCount(room: string): number {
    return localCount(this.io, room, this.others);
  }

  private localRooms(prefix: string): Record<string, number> {
    return localRooms(this.io, prefix, this.others);
  }

  private localPresence(room: string): Record<string, number> {
    const out: Record<string, number> = {};
    const add = (userId: string | undefined): void => {
      const key = userId ?? '(anonymous)';
      out[key] = (out[key] ?? 0) + 1;
    };
    if (this.others) for (const userId of this.others.users(room)) add(userId);
    const sids = this.io.of('/').adapter.rooms.get(room);
    if (!sids) return out;
    const sockets = this.io.of('/').sockets;
    for (const sid of sids) {
      const socket = sockets.get(sid);
      if (socket) add((socket.data as { userId?: string }).userId);
    }
    return out;
  }
}

/** Adds up per-node counts by key. */
function sumCounts(parts: Array<Record<string, number>>): Map<string, number> {
  const total = new Map<string, number>();
  for (const part of parts)
    for (const [key, n] of Object.entries(part)) total.set(key, (total.get(key) ?? 0) + n);
  return total;
}

/** Occupied channels and channel subscriptions on this node (read at scrape time by metrics). */
export function occupancyOf(
  io: Server,
  others?: LocalConnections,
): { channels: number; subscriptions: number } {
  const counts = Object.values(localRooms(io, '', others));
  return { channels: counts.length, subscriptions: counts.reduce((a, n) => a + n, 0) };
}

/** Real sockets of a room on this node (recovery and watch placeholders are not sockets). */
function localCount(io: Server, room: string, others?: LocalConnections): number {
  let n = others?.count(room) ?? 0;
  const sids = io.of('/').adapter.rooms.get(room);
  if (!sids) return n;
  const sockets = io.of('/').sockets;
  for (const sid of sids) if (sockets.has(sid)) n += 1;
  return n;
}

/** This node's occupied channels (by prefix) with their socket counts. */
function localRooms(io: Server, prefix: string, others?: LocalConnections): Record<string, number> {
  const out: Record<string, number> = {};
  const count = (room: string): void => {
    const channel = channelOfRoom(room);
    if (channel === undefined || !channel.startsWith(prefix)) return;
    const n = localCount(io, room, others);
    if (n > 0) out[channel] = n;
  };
  const rooms = io.of('/').adapter.rooms;
  for (const room of rooms.keys()) count(room);
  // The hub's rooms are adapter rooms too (held by its placeholder member), unless not yet.
  if (others) for (const room of others.rooms()) if (!rooms.has(room)) count(room);
  return out;
}
