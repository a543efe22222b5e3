import type { ChannelMessage, PreparedMessage } from './message.js';

/** A page of a channel's history. */
export interface HistoryPage {
  messages: ChannelMessage[];
  /** The offset of the newest message history holds (or would hold next as 0), if history exists. */
  top: string | undefined;
  /** Whether `since` was honoured: every message after it is in `messages` (up to `limit`). */
  complete: boolean;
}

/**
 * The seam between a node and the cluster. `publish` appends a message to its channel's history
 * (where the bus's HistoryPolicy has it on) and hands it to every node with subscribers, in one step, so live order
 * equals history order even when several nodes publish to one channel. It resolves only once the
 * message is recorded and handed over: an API answer of 200 relies on it.
 */
export interface Bus {
  /** Whether publishes can succeed now (Redis connected). */
  ready(): boolean;
  /**
   * Whether one `publish` of several messages records all of them or none (memory, one Redis).
   * False on a Redis Cluster, where each hash slot's messages succeed or fail on their own: a
   * failed publish may have published some of them.
   */
  readonly allOrNothing: boolean;
  /**
   * Appends and fans out one push to each of its channels (all or none in memory and on one
   * Redis; per hash slot on a Redis Cluster, where each channel refuses an id it already holds);
   * resolves with each message's offset (undefined where history is off).
   */
  publish(messages: PreparedMessage[]): Promise<Array<string | undefined>>;
  /** Messages after `since` (or the newest `limit` when no since), oldest first. */
  history(
    channel: string,
    options: { since?: string | undefined; limit: number },
  ): Promise<HistoryPage>;
  /**
   * The channel's current position (the offset of its newest message), starting its history
   * (a new epoch at 0) if it has none, so that "nothing yet" is a position a client can resume
   * from. Undefined when history is off for the channel.
   */
  position(channel: string): Promise<string | undefined>;
  /** Resolves once messages published before this call have reached this node's subscriptions. */
  settle(channel: string): Promise<void>;
  close(): Promise<void>;
}

/** Called for each message that reaches this node for a room with local subscribers. */
export type LocalMessageListener = (room: string, message: ChannelMessage) => void;
