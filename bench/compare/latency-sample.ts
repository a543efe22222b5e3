/**
 * A bounded sample of latencies: every value up to the capacity, then a uniform reservoir
 * (Vitter's algorithm R), so a load worker's memory and its report stay the same size however
 * many messages it receives, and the percentiles stay unbiased.
 */
import { performance } from 'node:perf_hooks';

/**
 * Wall-clock ms to the microsecond, the same in every process of the machine: a publisher writes
 * it into a push's data as `t`, a subscriber subtracts it from its own on receipt.
 */
export const epochMs = (): number => performance.timeOrigin + performance.now();

export class LatencySample {
  private readonly values: Float64Array;
  /** Values offered since the last clear (kept or not). */
  seen = 0;

  constructor(readonly capacity: number) {
    this.values = new Float64Array(capacity);
  }

  add(value: number): void {
    if (this.seen < this.capacity) this.values[this.seen] = value;
    else {
      const slot = Math.floor(Math.random() * (this.seen + 1));
      if (slot < this.capacity) this.values[slot] = value;
    }
    this.seen += 1;
  }

  /** A copy of the values kept (a view would send the whole buffer over IPC). */
  taken(): Float64Array {
    return this.values.slice(0, Math.min(this.seen, this.capacity));
  }

  clear(): void {
    this.seen = 0;
  }
}

/**
 * One sample from the samples of several workers, each weighted by how many values it saw: a
 * worker that received twice the messages counts twice, even when both reservoirs are full.
 */
export function mergeSamples(parts: Array<{ values: Float64Array; seen: number }>): number[] {
  const seen = parts.reduce((a, p) => a + p.seen, 0);
  if (parts.every((p) => p.values.length === p.seen)) return parts.flatMap((p) => [...p.values]);
  // The smallest rate any reservoir was kept at sets the rate for all.
  const rate = Math.min(...parts.filter((p) => p.seen > 0).map((p) => p.values.length / p.seen));
  const merged: number[] = [];
  for (const p of parts) {
    const want = Math.min(p.values.length, Math.round(p.seen * rate));
    // The reservoir is in no particular order, except its first values (kept before it filled):
    // pick `want` of them at random.
    const copy = [...p.values];
    for (let i = 0; i < want; i++) {
      const j = i + Math.floor(Math.random() * (copy.length - i));
      [copy[i], copy[j]] = [copy[j]!, copy[i]!];
      merged.push(copy[i]!);
    }
  }
  return seen === 0 ? [] : merged;
}
