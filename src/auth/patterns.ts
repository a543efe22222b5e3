/** Up to this many exact names are looked up in a plain array. */
const SMALL = 8;
const NONE: readonly string[] = [];

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

  /**
   * Exact names: a plain array for a short list, a Set past {@link SMALL}. Every connection holds
   * the patterns of its token, usually a channel or two: a Set would cost it a hash table.
   */
  private readonly exact: readonly string[] | ReadonlySet<string>;
  private readonly prefixes: readonly string[];

  constructor(patterns: Iterable<string>) {
    const exact: string[] = [];
    const prefixes: string[] = [];
    for (const p of patterns) {
      if (p.endsWith('*')) prefixes.push(p.slice(0, -1));
      else exact.push(p);
    }
    this.exact = exact.length > SMALL ? new Set(exact) : exact.length > 0 ? exact : NONE;
    this.prefixes = prefixes.length > 0 ? prefixes : NONE;
  }

  /** Whether the channel matches one of the patterns. */
  matches(channel: string): boolean {
    if (
      this.exact instanceof Set
        ? this.exact.has(channel)
        : (this.exact as readonly string[]).includes(channel)
    )
      return true;
    for (const prefix of this.prefixes) if (channel.startsWith(prefix)) return true;
    return false;
  }

  /** Whether there are no patterns at all. */
  get empty(): boolean {
    return (
      this.prefixes.length === 0 &&
      (this.exact instanceof Set ? this.exact.size : (this.exact as readonly string[]).length) === 0
    );
  }
}
