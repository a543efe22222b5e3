/**
 * The adapter messages the publish script sends, as two strings around the message JSON.
 *
 * This couples pushcast to the wire format of @socket.io/redis-adapter 8.3.0 and socket.io-adapter
 * 2.5.8 (pinned in package.json; test/integration/cluster.test.ts fails if an upgrade breaks
 * it). Sharded mode: a ClusterAdapter BROADCAST message (type 3) as JSON, which the adapter parses
 * when the first byte is `{`. Classic mode: the `[uid, packet, opts]` array the classic adapter
 * decodes with its parser (we give it a JSON one). The uid matches no node, so every node, the
 * publisher included, delivers the message to its local room.
 */
export const BUS_UID = 'pushcast-bus';

/** Socket.IO packet type EVENT, adapter message type BROADCAST. */
const PACKET_EVENT = 2;
const MESSAGE_BROADCAST = 3;

/** Envelope head and tail for one room. */
export function envelopeFor(
  mode: 'sharded' | 'classic',
  room: string,
): { head: string; tail: string } {
  const opts = `{"rooms":[${JSON.stringify(room)}],"except":[],"flags":{}}`;
  if (mode === 'sharded') {
    return {
      head: `{"uid":"${BUS_UID}","nsp":"/","type":${MESSAGE_BROADCAST},"data":{"opts":${opts},"packet":{"type":${PACKET_EVENT},"nsp":"/","data":["msg",`,
      tail: ']}}}',
    };
  }
  return {
    head: `["${BUS_UID}",{"type":${PACKET_EVENT},"nsp":"/","data":["msg",`,
    tail: `]},${opts}]`,
  };
}

/** The Redis pub/sub channel the adapter listens on for a single-room broadcast. */
export function adapterChannelFor(room: string, prefix = 'socket.io', nsp = '/'): string {
  return `${prefix}#${nsp}#${room}#`;
}
