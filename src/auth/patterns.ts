/**
 * A set of channel patterns: exact names, or prefixes ending in `*` (`org:7:*`; `*` alone matches
 * every channel). Compiled once so a check is a set lookup plus a short prefix scan.
 */
export class ChannelPatterns {
  private static readonly compiled = new WeakMap<readonly string[], ChannelPatterns>();

  /**
   * The compiled form of a pattern list, built once per list object: a socket's claim and an API
   * key's limits are the same array on every check, so checks after the first compile nothing.
   */
  static of(patterns: readonly string[]): ChannelPatterns {
    let m = ChannelPatterns.compiled.get(patterns);
    if (!m) {
      m = new ChannelPatterns(patterns);
      ChannelPatterns.compiled.set(patterns, m);
    }
    return m;
  }

  private readonly exact: Set<string>;
  private readonly prefixes: string[];

  constructor(patterns: Iterable<string>) {
    this.exact = new Set();
    this.prefixes = [];
    for (const p of patterns) {
      if (p.endsWith('*')) this.prefixes.push(p.slice(0, -1));
      else this.exact.add(p);
    }
  }

  /** Whether the channel matches one of the patterns. */
  matches(channel: string): boolean {
    if (this.exact.has(channel)) return true;
    for (const prefix of this.prefixes) if (channel.startsWith(prefix)) return true;
    return false;
  }

  /** Whether there are no patterns at all. */
  get empty(): boolean {
    return this.exact.size === 0 && this.prefixes.length === 0;
  }
}
