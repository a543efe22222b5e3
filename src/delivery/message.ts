/** A message as a socket receives it (`msg` event, docs/protocol.md, "Sockets"). */
export interface ChannelMessage {
  channel: string;
  event: string;
  data: unknown;
  id: string;
  ts: number;
  offset?: string;
}

/**
 * One push to one channel, serialized once. `head` is the message JSON up to (not including) the
 * offset and the closing brace, so the bus (or the Redis script) can splice the offset in without
 * parsing or serializing the payload again.
 */
export interface PreparedMessage {
  channel: string;
  id: string;
  ts: number;
  head: string;
  event: string;
  data: unknown;
}

/** Builds the JSON head of a message; `dataJson` is the payload already serialized. */
export function messageHead(
  channel: string,
  event: string,
  dataJson: string,
  id: string,
  ts: number,
): string {
  return `{"channel":${JSON.stringify(channel)},"event":${JSON.stringify(event)},"data":${dataJson},"id":"${id}","ts":${ts}`;
}

/** The full message JSON from a head and an offset (or none). */
export function messageJson(head: string, offset: string | undefined): string {
  return offset === undefined ? `${head}}` : `${head},"offset":"${offset}"}`;
}
