/** What the control API needs of one connection's channel session. */
export interface ControlledSession {
  /** The connection's user (fixed for its life: a refresh never switches users). */
  readonly userId: string | undefined;
  /** Takes the connection out of the channel (held or being joined); false if it had neither. */
  unsubscribe(channel: string): boolean;
  /** Ends the connection, telling the client not to reconnect; false if it was already closing. */
  disconnect(): boolean;
}

/**
 * The channel sessions of this node by user, whatever transport carries them (Socket.IO sockets
 * and Phoenix connections alike): what the control API acts on when a backend disconnects a user
 * or unsubscribes them from a channel. Each node answers for its own connections; the cluster-wide
 * sum is src/cluster/cluster-control.ts. Anonymous connections (a hook that gave no user id) are
 * not held: no backend can name them.
 */
export class UserSessions {
  /** A user's one session as it is, a Set only from the second on (most users hold one here). */
  private readonly byUser = new Map<string, ControlledSession | Set<ControlledSession>>();

  /** A session started. */
  add(session: ControlledSession): void {
    const { userId } = session;
    if (userId === undefined) return;
    const held = this.byUser.get(userId);
    if (held === undefined) this.byUser.set(userId, session);
    else if (held instanceof Set) held.add(session);
    else if (held !== session) this.byUser.set(userId, new Set([held, session]));
  }

  /** A session ended (its connection is gone). */
  remove(session: ControlledSession): void {
    const { userId } = session;
    if (userId === undefined) return;
    const held = this.byUser.get(userId);
    if (held === session) this.byUser.delete(userId);
    else if (held instanceof Set && held.delete(session) && held.size === 0)
      this.byUser.delete(userId);
  }

  /** Ends every connection of the user on this node; answers how many were closed. */
  disconnect(userId: string): number {
    let closed = 0;
    for (const session of this.sessionsOf(userId)) if (session.disconnect()) closed++;
    return closed;
  }

  /** Takes the user's connections on this node out of the channel; answers how many were in it. */
  unsubscribe(userId: string, channel: string): number {
    let taken = 0;
    for (const session of this.sessionsOf(userId)) if (session.unsubscribe(channel)) taken++;
    return taken;
  }

  /** The user's sessions now, as a copy: closing one ends it, which removes it from the registry. */
  private sessionsOf(userId: string): ControlledSession[] {
    const held = this.byUser.get(userId);
    return held === undefined ? [] : held instanceof Set ? [...held] : [held];
  }
}
