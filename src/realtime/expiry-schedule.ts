// Timers cannot wait past 2^31-1 ms; a later time is waited for in steps.
const MAX_TIMER_MS = 2 ** 31 - 1;

/** What the schedule tells when its time has come. */
export interface Expiring {
  expire(): void;
}

/** One scheduled expiry; give it back to {@link ExpirySchedule.remove} to call it off. */
export interface ScheduledExpiry {
  readonly at: number;
  readonly who: Expiring;
  /** Its place in the heap; -1 once removed or fired. */
  index: number;
}

/**
 * The token expiries of every session on the node, on one timer for the earliest of them: a
 * binary heap by time, so a connection costs an entry, not a timer and its callback (idle memory
 * per connection is a benchmarked figure, BENCHMARKS.md). An entry fires at its time, as a timer
 * of its own would.
 */
export class ExpirySchedule {
  private readonly heap: ScheduledExpiry[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** When the timer is due (ms since epoch); Infinity without a timer. */
  private timerAt = Infinity;

  /** Calls `who.expire()` at `at` (ms since epoch; now or past: at the next turn). */
  add(at: number, who: Expiring): ScheduledExpiry {
    const entry: ScheduledExpiry = { at, who, index: this.heap.length };
    this.heap.push(entry);
    this.up(entry.index);
    this.arm();
    return entry;
  }

  /** Calls an entry off (nothing if it already fired or was removed). */
  remove(entry: ScheduledExpiry): void {
    const i = entry.index;
    if (i < 0 || this.heap[i] !== entry) return;
    entry.index = -1;
    const last = this.heap.pop()!;
    if (last !== entry) {
      this.heap[i] = last;
      last.index = i;
      this.down(i);
      this.up(last.index);
    }
    if (this.heap.length === 0) this.disarm();
  }

  /** Entries waiting (the tests read it). */
  get size(): number {
    return this.heap.length;
  }

  private arm(): void {
    const first = this.heap[0];
    if (first === undefined || this.timerAt <= first.at) return;
    clearTimeout(this.timer);
    this.timerAt = first.at;
    const ms = Math.min(Math.max(first.at - Date.now(), 0), MAX_TIMER_MS);
    this.timer = setTimeout(() => this.fire(), ms);
  }

  private disarm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
  }

  private fire(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = Date.now();
    for (let first = this.heap[0]; first !== undefined && first.at <= now; first = this.heap[0]) {
      this.remove(first);
      first.who.expire();
    }
    this.arm();
  }

  private up(i: number): void {
    const heap = this.heap;
    const entry = heap[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]!.at <= entry.at) break;
      heap[i] = heap[parent]!;
      heap[i]!.index = i;
      i = parent;
    }
    heap[i] = entry;
    entry.index = i;
  }

  private down(i: number): void {
    const heap = this.heap;
    const entry = heap[i]!;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= heap.length) break;
      if (child + 1 < heap.length && heap[child + 1]!.at < heap[child]!.at) child += 1;
      if (heap[child]!.at >= entry.at) break;
      heap[i] = heap[child]!;
      heap[i]!.index = i;
      i = child;
    }
    heap[i] = entry;
    entry.index = i;
  }
}
