/** A message as delivered on a channel. */
export interface PushMessage<T = unknown> {
  channel: string;
  event: string;
  data: T;
  /** The push id (unique across the cluster). */
  id: string;
  /** Position in the channel's history (where history is on). Opaque. */
  offset?: string;
  /** Milliseconds since epoch when the push was accepted. */
  ts: number;
}

/** Why messages may have been missed: the app should refetch its state for the channel. */
export interface LostInfo {
  channel: string;
  /** The offset the client asked to resume after. */
  since: string;
}

/**
 * The server took the socket out of a channel it had joined: `forbidden`, a token refresh no
 * longer allows it; `unsubscribed`, the server unsubscribed it. The subscription has ended: it is
 * not rejoined on reconnect; `subscribe()` again to try anew.
 */
export interface LeftInfo {
  channel: string;
  /** `forbidden` or `unsubscribed`; other strings are reasons of a newer server. */
  reason: 'forbidden' | 'unsubscribed' | (string & {});
}

/** Callbacks of one subscription. */
export interface SubscriptionHandlers<T = unknown> {
  /** Every message of the channel, once, in order. */
  onMessage?(message: PushMessage<T>): void;
  /** Joined (first time and after every reconnect); `recovered` tells if a gap was filled. */
  onJoin?(info: { channel: string; offset?: string; recovered?: boolean; missed?: number }): void;
  /** Recovery failed after a reconnect: messages may be missing, refetch state. */
  onLost?(info: LostInfo): void;
  /** The join was refused. */
  onError?(error: Error): void;
  /** The server ended the subscription after it was joined (see {@link LeftInfo}). */
  onLeft?(info: LeftInfo): void;
}
