/** The webhook events: occupancy of a channel, and presence of a user on it, cluster-wide. */
export const WEBHOOK_EVENTS = [
  'channel_occupied',
  'channel_vacated',
  'member_added',
  'member_removed',
] as const;

/** A webhook event's name. */
export type WebhookEventName = (typeof WEBHOOK_EVENTS)[number];

/** One event as the receiver gets it, inside `{ events: [...] }`. */
export interface WebhookEvent {
  /** Stable across retries: the receiver de-duplicates on it. */
  id: string;
  name: WebhookEventName;
  channel: string;
  /** For `member_added` / `member_removed`. */
  userId?: string;
  /** When the transition happened, ms since epoch (for a vacate: when the last one left). */
  ts: number;
}

/**
 * A change seen on this node: its first socket on a channel (or its first socket of a user on a
 * channel) arrived, or its last one left. Only such local edges travel; the store turns them into
 * cluster-wide transitions.
 */
export interface LocalEdge {
  /** `channel`: the node's sockets on the channel; `member`: the node's sockets of `userId` on it. */
  kind: 'channel' | 'member';
  /** `up`: the first one arrived; `down`: the last one left. */
  edge: 'up' | 'down';
  channel: string;
  userId?: string;
  /** When it happened on this node, ms since epoch. */
  at: number;
}

/** What a store did that the node reports (metrics, a log line). */
export interface StoreOutcome {
  /** Undelivered events dropped to keep the queue within its bound. */
  dropped: number;
  /**
   * The heartbeat found this node no longer counted alive (it stalled past the node timeout and
   * another node took its members down): it must state its occupancy again.
   */
  restated?: boolean;
}

/** Which channel, or which member of a channel, an edge is about. */
export type Occupant = Pick<LocalEdge, 'kind' | 'channel' | 'userId'>;

/**
 * An occupant as one string key: `c\0<channel>` or `m\0<channel>\0<user>` (channel names hold no
 * NUL; the user comes last, so it may). The Redis store's scripts read the same format.
 */
export function entryOf(o: Occupant): string {
  return o.kind === 'channel' ? `c\0${o.channel}` : `m\0${o.channel}\0${o.userId ?? ''}`;
}

/** The occupant an {@link entryOf} key names. */
export function occupantOf(entry: string): Occupant {
  const sep = entry.indexOf('\0', 2);
  return entry[0] === 'c'
    ? { kind: 'channel', channel: entry.slice(2) }
    : { kind: 'member', channel: entry.slice(2, sep), userId: entry.slice(sep + 1) };
}
