import type { ChannelMessage } from '../delivery/message.js';
import type { RoomHolder } from './room-taps.js';

/** Builds what {@link HubMember.write} takes for one message (once per message and node). */
export type MessageEncoder = (message: ChannelMessage) => Buffer;

/** What the hub needs of a connection. */
export interface HubMember {
  /** Its user (presence, per-user counts); undefined for an anonymous connection. */
  readonly userId: string | undefined;
  /** The transport, in metrics and logs: `phoenix`, or `websocket` for Socket.IO. */
  readonly transport: string;
  /** The encoder of its protocol: members with the same one share each message's buffer. */
  readonly encode: MessageEncoder;
  /** Writes an encoded message as it is (the same buffer goes to every member of a room). */
  write(frame: Buffer): void;
}

/** A hub member as the rest of the node handles it (drain, slow consumers, logs). */
export interface HubConnection extends HubMember {
  /** The connection id of the log lines. */
  readonly id: string;
  /** Output held in user space, not yet taken by the kernel. */
  readonly unsentBytes: number;
  /** Drain: a transport close, so that the client reconnects by itself (to another node). */
  closeTransport(): void;
  /** Drops the TCP connection at once (slow consumer, end of drain). */
  terminate(): void;
}

/** Who wants to know when a connection of a user enters or leaves a room. */
export interface RoomMembership {
  joined(room: string, userId: string | undefined): void;
  left(room: string, userId: string | undefined): void;
}

/**
 * The connections of this node that are not engine.io sockets (Phoenix-protocol WebSockets, and
 * Socket.IO clients on a plain WebSocket, src/realtime/socketio-endpoint.ts) and the channel rooms
 * they are in.
 *
 * The adapter cannot deliver to them: the hub holds each room that has members (the holder keeps
 * the node subscribed to the channel, as a socket would) and, for each message of the room the
 * node sees ({@link deliver}, called once per broadcast by observeBroadcasts), encodes it once per
 * protocol present and writes that same buffer to every member of that protocol. Messages come
 * from the same per-node pipeline and in the same order as the room's engine.io sockets get them.
 *
 * It also answers for these connections wherever the node counts its sockets (stats, subscriber
 * counts, presence, metrics, drain).
 */
export class ConnectionHub<M extends HubMember = HubConnection> {
  private readonly members = new Set<M>();
  /** A room's one member as it is, a Set only once it has two or more (most rooms hold one). */
  private readonly byRoom = new Map<string, HubMember | Set<HubMember>>();

  constructor(
    private readonly holder: RoomHolder,
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
    const held = this.byRoom.get(room);
    if (held === undefined) {
      this.byRoom.set(room, member);
      this.holder.hold(room);
    } else if (held instanceof Set) {
      if (held.has(member)) return;
      held.add(member);
    } else {
      if (held === member) return;
      this.byRoom.set(room, new Set([held, member]));
    }
    this.membership?.joined(room, member.userId);
  }

  remove(room: string, member: M): void {
    const held = this.byRoom.get(room);
    if (held instanceof Set) {
      if (!held.delete(member)) return;
      // Back to one member held as it is.
      if (held.size === 1) this.byRoom.set(room, held.values().next().value!);
    } else {
      if (held === undefined || held !== member) return;
      this.byRoom.delete(room);
      this.holder.release(room);
    }
    this.membership?.left(room, member.userId);
  }

  /** Connections on this node. */
  get size(): number {
    return this.members.size;
  }

  /** Connections of one transport on this node (counted when asked: a metric's scrape). */
  sizeOf(transport: string): number {
    let n = 0;
    for (const member of this.members) if (member.transport === transport) n += 1;
    return n;
  }

  /** Every connection on this node (drain, slow consumers); live: copy it to keep it. */
  connections(): IterableIterator<M> {
    return this.members.values();
  }

  /** Connections in the room on this node. */
  count(room: string): number {
    const held = this.byRoom.get(room);
    return held === undefined ? 0 : held instanceof Set ? held.size : 1;
  }

  /**
   * Closes the room's connections at the transport level (they reconnect and rejoin with
   * `since`); returns how many.
   */
  closeTransports(this: ConnectionHub<HubConnection>, room: string): number {
    const members = [...this.membersOf(room)] as HubConnection[];
    for (const member of members) member.closeTransport();
    return members.length;
  }

  /** Rooms with at least one connection on this node. */
  rooms(): Iterable<string> {
    return this.byRoom.keys();
  }

  /** The users of the room's connections (one entry per connection). */
  *users(room: string): Iterable<string | undefined> {
    for (const member of this.membersOf(room)) yield member.userId;
  }

  /** A live message of the room reached this node: to every member, once per protocol encoded. */
  deliver(room: string, message: ChannelMessage): void {
    const members = this.byRoom.get(room);
    if (members === undefined) return;
    if (!(members instanceof Set)) return members.write(members.encode(message));
    // One encoding per protocol; per member only a comparison with the one before it (a map of
    // the encodings only once a second protocol turns up).
    let frames: Map<MessageEncoder, Buffer> | undefined;
    let encode: MessageEncoder | undefined;
    let frame: Buffer | undefined;
    for (const member of members) {
      if (member.encode !== encode) {
        if (encode !== undefined) (frames ??= new Map()).set(encode, frame!);
        encode = member.encode;
        frame = frames?.get(encode) ?? encode(message);
      }
      member.write(frame!);
    }
  }

  private membersOf(room: string): Iterable<HubMember> {
    const held = this.byRoom.get(room);
    return held === undefined ? [] : held instanceof Set ? held : [held];
  }
}
