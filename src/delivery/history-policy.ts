import { ChannelPatterns } from '../auth/patterns.js';
import type { Config } from '../config/schema.js';

/** History settings per channel: the first matching override in the config file, else defaults. */
export class HistoryPolicy {
  private readonly overrides: Array<{ patterns: ChannelPatterns; size: number; ttlS: number }>;

  constructor(private readonly history: Config['history']) {
    this.overrides = history.channels.map((o) => ({
      patterns: new ChannelPatterns([o.pattern]),
      size: o.size ?? history.size,
      ttlS: o.ttlS ?? history.ttlS,
    }));
  }

  /** Size (0 = off) and TTL for one channel. */
  for(channel: string): { size: number; ttlS: number } {
    for (const o of this.overrides)
      if (o.patterns.matches(channel)) return { size: o.size, ttlS: o.ttlS };
    return { size: this.history.size, ttlS: this.history.ttlS };
  }
}
