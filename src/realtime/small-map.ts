/**
 * A map for the few entries one connection keeps (its memberships by room: usually one). The first
 * entry is held in two fields; a `Map` is made only when a second key arrives, and kept from then
 * on. A `Map` of one entry costs about 180 bytes of heap, this object about 50, and every idle
 * connection holds one (BENCHMARKS.md, idle memory).
 *
 * Iteration gives the entries in the order they were added, like `Map`'s. An entry added during an
 * iteration is visited only in the `Map` form (as `Map` does); the callers add nothing while they
 * iterate.
 */
export class SmallMap<V> implements Iterable<[string, V]> {
  private key: string | undefined;
  private value: V | undefined;
  private map: Map<string, V> | undefined;

  get(key: string): V | undefined {
    if (this.map !== undefined) return this.map.get(key);
    return key === this.key ? this.value : undefined;
  }

  set(key: string, value: V): void {
    if (this.map !== undefined) this.map.set(key, value);
    else if (this.key === undefined || this.key === key) {
      this.key = key;
      this.value = value;
    } else {
      this.map = new Map([
        [this.key, this.value as V],
        [key, value],
      ]);
      this.key = undefined;
      this.value = undefined;
    }
  }

  /** Whether there was an entry for `key`. */
  delete(key: string): boolean {
    if (this.map !== undefined) return this.map.delete(key);
    if (this.key === undefined || key !== this.key) return false;
    this.key = undefined;
    this.value = undefined;
    return true;
  }

  get size(): number {
    if (this.map !== undefined) return this.map.size;
    return this.key === undefined ? 0 : 1;
  }

  *[Symbol.iterator](): IterableIterator<[string, V]> {
    if (this.map !== undefined) yield* this.map;
    else if (this.key !== undefined) yield [this.key, this.value as V];
  }
}
