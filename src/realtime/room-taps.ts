import type { Adapter } from 'socket.io-adapter';
import type { ChannelMessage } from '../delivery/message.js';

/** An open tap on a room; `close()` ends it. */
export interface RoomTap {
  /** False when this node's subscription to the room could not be confirmed (Redis away). */
  subscribed: boolean;
  close: () => void;
}

/** A tap opened at once, its subscription still being confirmed. */
export interface OpeningTap {
  /**
   * Resolves (never rejects) with whether this node's subscription to the room was confirmed;
   * with Redis away it may take until Redis is back, so a caller with a deadline does not wait.
   */
  subscribed: Promise<boolean>;
  close: () => void;
}

/** What keeps the node subscribed to a room without a socket in it. */
export interface RoomHolder {
  hold(room: string): void;
  release(room: string): void;
}

/** The adapter member that holds the connection hub's rooms (no socket has this id). */
const HUB_PLACEHOLDER = 'hub:rooms';

/**
 * Listeners on a room's live messages that are not sockets of the room: a socket catching up on
 * a channel (join with `since`) buffers here until it is handed the room; the admin console's
 * channel watcher streams from here. Fed once per broadcast by `observeBroadcasts`.
 *
 * Each tap holds one placeholder member in the adapter's room, so the node stays subscribed to
 * the channel even when no socket has joined it; the placeholder is no socket, so broadcasts skip
 * it, and {@link sockets} takes it out of the room's member count.
 */
export class RoomTaps implements RoomHolder {
  private readonly byRoom = new Map<string, Set<(message: ChannelMessage) => void>>();
  private next = 0;

  constructor(
    /** The namespace's adapter (read at each tap: installing the Redis adapter replaces it). */
    private readonly adapter: () => Adapter,
    /** Resolves once this node receives the room's messages. */
    private readonly ensureSubscribed: (room: string) => Promise<void>,
  ) {}

  /** Calls `fn` with every live message of the room until closed; resolves once subscribed. */
  async tap(room: string, fn: (message: ChannelMessage) => void): Promise<RoomTap> {
    const opening = this.open(room, fn);
    return { subscribed: await opening.subscribed, close: opening.close };
  }

  /**
   * Calls `fn` with every live message of the room until closed, from now on; the subscription
   * is confirmed in the background (`subscribed`).
   */
  open(room: string, fn: (message: ChannelMessage) => void): OpeningTap {
    let set = this.byRoom.get(room);
    if (!set) {
      set = new Set();
      this.byRoom.set(room, set);
    }
    set.add(fn);
    const placeholder = `tap:${this.next++}`;
    void this.adapter().addAll(placeholder, new Set([room]));
    let open = true;
    const close = (): void => {
      if (!open) return;
      open = false;
      set.delete(fn);
      if (set.size === 0 && this.byRoom.get(room) === set) this.byRoom.delete(room);
      void this.adapter().delAll(placeholder);
    };
    const subscribed = this.ensureSubscribed(room).then(
      () => true,
      () => false,
    );
    return { subscribed, close };
  }

  /**
   * Keeps the node subscribed to the room until {@link release}: what a tap does, for the
   * connection hub, which delivers to its members itself. One placeholder member holds every
   * such room, so a held room costs the adapter's own room entry and no more.
   */
  hold(room: string): void {
    void this.adapter().addAll(HUB_PLACEHOLDER, new Set([room]));
    // The subscription (and its gap tracking, on Redis) confirmed in the background, as a tap's.
    this.ensureSubscribed(room).catch(() => {});
  }

  release(room: string): void {
    void this.adapter().del(HUB_PLACEHOLDER, room);
  }

  /** Sockets among a room's `members` (the adapter's count, placeholders included). */
  sockets(room: string, members: number): number {
    const held = this.adapter().rooms.get(room)?.has(HUB_PLACEHOLDER) ? 1 : 0;
    return members - (this.byRoom.get(room)?.size ?? 0) - held;
  }

  /** A live message reached this node for the room. */
  onMessage(room: string, message: ChannelMessage): void {
    const set = this.byRoom.get(room);
    if (!set) return;
    for (const fn of set) fn(message);
  }
}
