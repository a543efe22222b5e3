import type { ChannelMessage } from '../delivery/message.js';

/**
 * Listeners on a room's live messages that are not sockets of the room: a socket catching up on
 * a channel (join with `since`) buffers here until it is handed the room; the admin console's
 * channel watcher streams from here. Fed once per broadcast by `observeBroadcasts`.
 */
export class RoomTaps {
  private readonly byRoom = new Map<string, Set<(message: ChannelMessage) => void>>();

  /** Calls `fn` with every live message of the room until the returned function is called. */
  listen(room: string, fn: (message: ChannelMessage) => void): () => void {
    let set = this.byRoom.get(room);
    if (!set) {
      set = new Set();
      this.byRoom.set(room, set);
    }
    set.add(fn);
    return () => {
      set.delete(fn);
      if (set.size === 0 && this.byRoom.get(room) === set) this.byRoom.delete(room);
    };
  }

  /** Listeners on the room (each holds one placeholder member in the adapter's room). */
  size(room: string): number {
    return this.byRoom.get(room)?.size ?? 0;
  }

  /** A live message reached this node for the room. */
  onMessage(room: string, message: ChannelMessage): void {
    const set = this.byRoom.get(room);
    if (!set) return;
    for (const fn of set) fn(message);
  }
}
