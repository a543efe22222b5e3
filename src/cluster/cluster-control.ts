import type { Server } from 'socket.io';
import { unavailable } from '../errors.js';
import { answerRequests, askOtherNodes } from './server-requests.js';

/** What one node does to its own connections when a backend asks (realtime/user-sessions.ts). */
export interface LocalControl {
  /** Closes the user's connections on this node; answers how many. */
  disconnect(userId: string): number;
  /** Takes the user's connections on this node out of the channel; answers how many. */
  unsubscribe(userId: string, channel: string): number;
}

/**
 * The control API across the cluster: every node applies the action to its own connections (both
 * transports) and answers its count through the adapter's server-side requests; the asking node
 * applies it locally at the same time and adds the counts up.
 *
 * Unlike the cluster views, an action cannot leave a node out quietly: when a node does not answer
 * in time the action may have reached only part of the cluster, so the answer is `503 unavailable`
 * (with `Retry-After`). Both actions are idempotent (a socket already out is not counted again), so
 * a retry is safe and completes what the first attempt missed.
 */
export class ClusterControl {
  constructor(
    private readonly io: Server,
    private readonly local: LocalControl,
    /** Single node: undefined. Otherwise whether the cluster bus can carry requests now. */
    private readonly clusterReady: (() => boolean) | undefined,
  ) {
    answerRequests(io, 'pushcast:disconnect', (userId) => local.disconnect(String(userId)));
    answerRequests(io, 'pushcast:unsubscribe', (userId, channel) =>
      local.unsubscribe(String(userId), String(channel)),
    );
  }

  /** Closes every connection of the user in the cluster; answers how many were closed. */
  async disconnect(userId: string): Promise<number> {
    return this.everywhere('pushcast:disconnect', [userId], () => this.local.disconnect(userId));
  }

  /** Takes every connection of the user in the cluster out of the channel; answers how many. */
  async unsubscribe(userId: string, channel: string): Promise<number> {
    return this.everywhere('pushcast:unsubscribe', [userId, channel], () =>
      this.local.unsubscribe(userId, channel),
    );
  }

  private async everywhere(
    event: string,
    args: readonly unknown[],
    here: () => number,
  ): Promise<number> {
    // Redis away: refused (thrown here) before anything is done anywhere.
    const others = askOtherNodes<unknown>(this.io, this.clusterReady, event, args);
    const mine = here();
    const { answers, complete } = await others;
    if (!complete) throw unavailable('control');
    return answers.reduce<number>((sum, n) => sum + (typeof n === 'number' ? n : 0), mine);
  }
}
