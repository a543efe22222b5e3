/**
 * Redis commands in flight, by key, for callers that may share one instead of sending their own
 * (a channel's position read, a room's SSUBSCRIBE): each kept until its answer settles, unless a
 * newer one was kept for the key meanwhile or the key was dropped.
 */
export class InFlight<K, V> {
  private readonly kept = new Map<K, V>();

  /** What is in flight for `key`, if anything. */
  get(key: K): V | undefined {
    return this.kept.get(key);
  }

  /** Keeps `value` for `key` until `answer` settles; gives `value` back. */
  keep(key: K, value: V, answer: Promise<unknown>): V {
    this.kept.set(key, value);
    const settled = (): void => {
      if (this.kept.get(key) === value) this.kept.delete(key);
    };
    answer.then(settled, settled);
    return value;
  }

  /** Forgets what is in flight for `key`: the next caller sends its own. */
  delete(key: K): void {
    this.kept.delete(key);
  }
}
