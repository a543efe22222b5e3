/**
 * Preloaded into the server processes of the benchmarks that read heap (`node --expose-gc
 * --import ./bench/gc-on-signal.mjs .bench-build/main.js`): SIGUSR2 runs a full garbage
 * collection, so the heap read afterwards is what the node holds, not what it has yet to collect.
 * The server itself is unchanged. Plain JavaScript: the server runs without tsx.
 */
import process from 'node:process';

process.on('SIGUSR2', () => {
  globalThis.gc?.();
});
