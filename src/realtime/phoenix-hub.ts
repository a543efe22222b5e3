import type { ChannelMessage } from '../delivery/message.js';
import { messageFrame } from './phoenix-frames.js';
import type { OpeningTap, RoomTaps } from './room-taps.js';

/** What the hub needs of a Phoenix connection. */
export interface PhoenixMember {
  /** Its user (presence, per-user counts); undefined for an anonymous connection. */
  readonly userId: string | undefined;
  /** Writes an encoded frame as it is (the same buffer goes to every member of a room). */
  write(frame: Buffer): void;
}

/** Who wants to know when a connection of a user enters or leaves a room. */
export interface RoomMembership {
  joined(room: string, userId: string | undefined): void;
  left(room: string, userId: string | undefined): void;
}

interface HubRoom {
  members: Set<PhoenixMember>;
  tap: OpeningTap;
}

/**
 * The Phoenix connections of this node and the channel rooms they are in.
 *
 * Phoenix connections are not Socket.IO sockets, so the adapter cannot deliver to them: the hub
 * holds one room tap per room that has Phoenix members (the tap keeps the node subscribed to the
 * channel, as a socket would) and, for each message the tap hands it, encodes the Phoenix frame
 * once and writes that same buffer to every member. Messages come from the same per-node pipeline
 * and in the same order as the room's Socket.IO sockets get them (observeBroadcasts).
 *
 * It also answers for these connections wherever the node counts its sockets (stats, subscriber
 * counts, presence, metrics, drain).
 */
export class PhoenixHub<M extends PhoenixMember = PhoenixMember> {
  private readonly members = new Set<M>();
  private readonly byRoom = new Map<string, HubRoom>();

  constructor(
    private readonly taps: Pick<RoomTaps, 'open'>,
    /** Builds a message's frame (once per message and node). */
    private readonly encode: (message: ChannelMessage) => Buffer = messageFrame,
    /** Told of every member entering and leaving a room (webhook occupancy). */
    private readonly membership?: RoomMembership,
  ) {}

  /** A connection opened. */
  register(member: M): void {
    this.members.add(member);
  }

  /** A connection is gone: out of every room. */
  unregister(member: M, rooms: Iterable<string>): void {
    for (const room of rooms) this.remove(room, member);
    this.members.delete(member);
  }

  /** From now on the room's live messages reach `member`. */
  add(room: string, member: M): void {
    let entry = this.byRoom.get(room);
    if (!entry) {
      const members = new Set<PhoenixMember>();
      // The tap is opened before anything else can happen: a message from here on is seen.
      const tap = this.taps.open(room, (message) => this.deliver(members, message));
      entry = { members, tap };
      this.byRoom.set(room, entry);
    }
    if (entry.members.has(member)) return;
    entry.members.add(member);
    this.membership?.joined(room, member.userId);
  }

  remove(room: string, member: M): void {
    const entry = this.byRoom.get(room);
    if (!entry || !entry.members.delete(member)) return;
    this.membership?.left(room, member.userId);
    if (entry.members.size > 0) return;
    this.byRoom.delete(room);
    entry.tap.close();
  }

  /** Connections on this node. */
  get size(): number {
    return this.members.size;
  }

  /** Every connection on this node (drain, slow consumers); live: copy it to keep it. */
  connections(): IterableIterator<M> {
    return this.members.values();
  }

  /** Connections in the room on this node. */
  count(room: string): number {
    return this.byRoom.get(room)?.members.size ?? 0;
  }

  /** Rooms with at least one connection on this node. */
  rooms(): Iterable<string> {
    return this.byRoom.keys();
  }

  /** The users of the room's connections (one entry per connection). */
  *users(room: string): Iterable<string | undefined> {
    const entry = this.byRoom.get(room);
    if (entry) for (const member of entry.members) yield member.userId;
  }

  private deliver(members: Set<PhoenixMember>, message: ChannelMessage): void {
    if (members.size === 0) return;
    const frame = this.encode(message);
    for (const member of members) member.write(frame);
  }
}
