/**
 * Preloaded into the server processes of the soak and abuse benchmarks only (`node --expose-gc
 * --import tsx --import ./bench/gc-on-signal.ts src/main.ts`): SIGUSR2 runs a full garbage
 * collection, so the heap read from /metrics afterwards is what the node holds, not what it has
 * yet to collect. The server itself is unchanged.
 */
process.on('SIGUSR2', () => {
  globalThis.gc?.();
});
