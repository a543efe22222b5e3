/** Counts events per second over the last minute, for "recent push rates" in the stats API. */
export class RateMeter {
  private readonly buckets = new Float64Array(60);
  private lastSecond = 0;

  constructor(private readonly now: () => number = Date.now) {}

  /** Adds `n` events now. */
  add(n = 1): void {
    this.advance();
    this.buckets[this.lastSecond % 60]! += n;
  }

  /** Mean events per second over the last `seconds` whole seconds (1-59). */
  rate(seconds: number): number {
    this.advance();
    let sum = 0;
    for (let i = 1; i <= seconds; i++) sum += this.buckets[(this.lastSecond - i + 60) % 60]!;
    return sum / seconds;
  }

  private advance(): void {
    const second = Math.floor(this.now() / 1000);
    if (second === this.lastSecond) return;
    const gap = Math.min(60, second - this.lastSecond);
    for (let i = 1; i <= gap; i++) this.buckets[(this.lastSecond + i) % 60] = 0;
    this.lastSecond = second;
  }
}
