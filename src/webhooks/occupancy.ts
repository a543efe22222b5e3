import { channelOfRoom } from '../delivery/names.js';
import { entryOf, occupantOf, type LocalEdge } from './events.js';

/**
 * This node's sockets per channel and per user on a channel, from room joins and leaves (every
 * transport): it reports only the edges, a node's first one in and its last one out, which is all
 * the store needs to know the cluster's.
 */
export class Occupancy {
  private readonly counts = new Map<string, number>();

  constructor(private readonly onEdge: (edge: LocalEdge) => void) {}

  /** A connection of `userId` entered `room` (rooms that are not channels are ignored). */
  joined(room: string, userId: string | undefined): void {
    const channel = channelOfRoom(room);
    if (channel === undefined) return;
    this.step({ kind: 'channel', channel }, 1);
    if (userId !== undefined) this.step({ kind: 'member', channel, userId }, 1);
  }

  /** A connection of `userId` left `room`. */
  left(room: string, userId: string | undefined): void {
    const channel = channelOfRoom(room);
    if (channel === undefined) return;
    if (userId !== undefined) this.step({ kind: 'member', channel, userId }, -1);
    this.step({ kind: 'channel', channel }, -1);
  }

  /** Every channel and member this node holds now, as `up` edges (channels first). */
  current(at: number): LocalEdge[] {
    const edges: LocalEdge[] = [...this.counts.keys()].map((key) => ({
      ...occupantOf(key),
      edge: 'up',
      at,
    }));
    return edges.sort((a, b) => (a.kind === b.kind ? 0 : a.kind === 'channel' ? -1 : 1));
  }

  private step(
    what:
      { kind: 'channel'; channel: string } | { kind: 'member'; channel: string; userId: string },
    by: 1 | -1,
  ): void {
    const key = entryOf(what);
    const before = this.counts.get(key) ?? 0;
    const after = Math.max(0, before + by);
    if (after === 0) this.counts.delete(key);
    else this.counts.set(key, after);
    if (before === 0 && after === 1) this.onEdge({ ...what, edge: 'up', at: Date.now() });
    else if (before > 0 && after === 0) this.onEdge({ ...what, edge: 'down', at: Date.now() });
  }
}
