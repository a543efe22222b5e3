/** Channel names: 1-200 chars of `A-Z a-z 0-9 _ - : . @ =` (docs/protocol.md, "Push API"). */
export const CHANNEL_NAME = /^[A-Za-z0-9_\-:.@=]{1,200}$/;
/** Event names: 1-100 chars of `A-Z a-z 0-9 _ - : .`. */
export const EVENT_NAME = /^[A-Za-z0-9_\-:.]{1,100}$/;

/** Whether a string is a valid channel name. */
export function isChannelName(value: unknown): value is string {
  return typeof value === 'string' && CHANNEL_NAME.test(value);
}

/**
 * The Socket.IO room (and Redis hash tag) of a channel. The braces make `{channel}` the Redis
 * Cluster hash tag, so the history keys and the shard channel of one channel share a slot and the
 * publish script may SPUBLISH from inside it. Channel names never contain braces.
 */
export function roomOf(channel: string): string {
  return `{${channel}}`;
}

/** The channel of a room made by {@link roomOf}, or undefined for any other room. */
export function channelOfRoom(room: string): string | undefined {
  return room.length > 2 && room.startsWith('{') && room.endsWith('}')
    ? room.slice(1, -1)
    : undefined;
}
