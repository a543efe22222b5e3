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

const envelopes = new Map<string, { head: string; tail: string }>();

/** {@link envelopeFor}, cached (bounded: a cache, not a registry of every channel ever seen). */
export function cachedEnvelope(
  mode: 'sharded' | 'classic',
  room: string,
): { head: string; tail: string } {
  const key = mode === 'sharded' ? room : `c${room}`;
  let env = envelopes.get(key);
  if (!env) {
    env = envelopeFor(mode, room);
    if (envelopes.size >= 10_000) envelopes.clear();
    envelopes.set(key, env);
  }
  return env;
}

const SHARDED_START = Buffer.from(`{"uid":"${BUS_UID}",`);
const CLASSIC_START = Buffer.from(`["${BUS_UID}",`);
const OFFSET_FIELD = ',"offset":"';

/**
 * The offset of a message the publish script sent to a room, read from the raw adapter message
 * without parsing it: the script writes the offset last, just before the envelope tail, so the
 * end of the message is `,"offset":"<epoch>:<n>"}` + tail. Undefined for anything else (another
 * sender's message, or a message of a channel whose history is off, which ends with `"ts":N}`):
 * whatever the payload holds, it comes before the id and the timestamp, never at the end.
 */
export function offsetOfRaw(
  raw: Buffer,
  mode: 'sharded' | 'classic',
  room: string,
): { epoch: string; n: number } | undefined {
  const start = mode === 'sharded' ? SHARDED_START : CLASSIC_START;
  if (raw.length < start.length || raw.compare(start, 0, start.length, 0, start.length) !== 0)
    return undefined;
  const { tail } = cachedEnvelope(mode, room);
  const close = raw.length - tail.length - 2;
  // `"}` then the tail.
  if (close < 0 || raw[close] !== 0x22 || raw[close + 1] !== 0x7d) return undefined;
  if (raw.toString('latin1', close + 2) !== tail) return undefined;
  // An offset is at most 32 + 1 + 16 characters (epoch, colon, a safe integer).
  const text = raw.toString('latin1', Math.max(0, close - 64), close);
  const at = text.lastIndexOf(OFFSET_FIELD);
  if (at === -1) return undefined;
  const m = /^([A-Za-z0-9]{1,32}):(\d{1,16})$/.exec(text.slice(at + OFFSET_FIELD.length));
  if (!m) return undefined;
  const n = Number(m[2]);
  return Number.isSafeInteger(n) ? { epoch: m[1]!, n } : undefined;
}
