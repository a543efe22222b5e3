import type { ChannelMessage } from '../delivery/message.js';

/**
 * Sockets catching up on a channel (join with `since`) are not in the room yet; live messages for
 * the room are buffered for them here, then merged with what history returned, so the socket gets
 * every message once and in offset order.
 */
export class RecoveryBuffers {
  private readonly byRoom = new Map<string, Set<ChannelMessage[]>>();

  /** Starts buffering the room's live messages; returns the buffer and a function to stop. */
  open(room: string): { buffer: ChannelMessage[]; close: () => void } {
    const buffer: ChannelMessage[] = [];
    let set = this.byRoom.get(room);
    if (!set) {
      set = new Set();
      this.byRoom.set(room, set);
    }
    set.add(buffer);
    return {
      buffer,
      close: () => {
        set.delete(buffer);
        if (set.size === 0 && this.byRoom.get(room) === set) this.byRoom.delete(room);
      },
    };
  }

  /** A live message reached this node for the room. */
  onMessage(room: string, message: ChannelMessage): void {
    const set = this.byRoom.get(room);
    if (!set) return;
    for (const buffer of set) buffer.push(message);
  }
}
