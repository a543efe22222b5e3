import type { Adapter } from 'socket.io-adapter';
import type { ChannelMessage } from '../delivery/message.js';

/** Called once per `msg` broadcast on this node, with the number of local members of the room. */
export type BroadcastObserver = (room: string, members: number, message: ChannelMessage) => void;

interface Packet {
  type: number;
  data?: unknown[];
}
interface BroadcastOptions {
  rooms: Set<string>;
}
/** The two in-memory adapter methods hooked here (`_encode` is private in its typings). */
interface Patchable {
  _encode(packet: Packet, opts: unknown): unknown;
  apply(opts: BroadcastOptions, cb: (socket: unknown) => void): void;
}

/**
 * Lets pushcast see every `msg` broadcast that reaches this node's sockets, whichever adapter
 * delivers it (memory, sharded or classic: the cluster adapters call the in-memory broadcast through
 * `super`, so only its calls to `this._encode` and `this.apply` can be hooked per instance). The
 * observer runs once per broadcast, not per socket: the hot path stays flat.
 */
export function observeBroadcasts(adapter: Adapter, observer: BroadcastObserver): void {
  const target = adapter as unknown as Patchable;
  const encode = target._encode.bind(target);
  const apply = target.apply.bind(target);
  let pending: Packet | undefined;
  target._encode = (packet, opts) => {
    pending = packet;
    return encode(packet, opts);
  };
  target.apply = (opts, cb) => {
    const packet = pending;
    pending = undefined;
    // The broadcast's own delivery first, whole: a hook inside this one (direct-frames.ts) holds
    // the broadcast until its apply, which an observer that throws, or broadcasts itself, must
    // not come between.
    apply(opts, cb);
    if (packet && packet.type === 2 && packet.data?.[0] === 'msg' && opts.rooms.size === 1) {
      const room = opts.rooms.values().next().value as string;
      observer(room, adapter.rooms.get(room)?.size ?? 0, packet.data[1] as ChannelMessage);
    }
  };
}
