/** The SDK's reconnect schedule (option `backoff` of `createClient`). */
export interface BackoffOptions {
  /** The first retry waits up to this long; each failed attempt doubles it (default 500 ms). */
  baseMs?: number;
  /** The most one retry's jitter window grows to (default 30 s), on top of any server floor. */
  capMs?: number;
}

/** The longest server-given floor honoured (a server asking for more gets this). */
export const MAX_FLOOR_MS = 300_000;

export const DEFAULT_BACKOFF: Required<BackoffOptions> = { baseMs: 500, capMs: 30_000 };

/**
 * The wait before reconnect attempt `attempt` (0 for the first retry after a connection was lost
 * or refused): full jitter, capped, `random(0, min(capMs, baseMs * 2^attempt))`, so clients that
 * lost the same node spread out instead of coming back together.
 *
 * `floorMs` is the server's `retryAfterMs`: the wait is at least that (bounded by
 * {@link MAX_FLOOR_MS}), and the jitter is added on top of it, not merged into it, or every client
 * told the same floor would retry at the same moment. Result: `[floor, floor + window)`.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = {},
  floorMs = 0,
  random: () => number = Math.random,
): number {
  const baseMs = positive(options.baseMs, DEFAULT_BACKOFF.baseMs);
  const capMs = positive(options.capMs, DEFAULT_BACKOFF.capMs);
  // 2^attempt overflows to Infinity for huge attempts; min() keeps it at the cap.
  const window = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt));
  const floor = Math.min(MAX_FLOOR_MS, Number.isFinite(floorMs) && floorMs > 0 ? floorMs : 0);
  return floor + Math.floor(random() * window);
}

function positive(value: number | undefined, fallback: number): number {
  return value !== undefined && Number.isFinite(value) && value > 0 ? value : fallback;
}
