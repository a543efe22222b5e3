/**
 * One load worker process (`node --import tsx bench/compare/load-worker.ts`, forked by
 * load-client.ts): subscribers and a publisher driven over IPC, so the load runs on its own cores
 * beside the servers and its CPU can be read to tell when the client, not the server, was the
 * limit. Exits when the benchmark disconnects.
 */
import { performance } from 'node:perf_hooks';
import type { LoadAnswer, LoadOperations, LoadRequest } from './load-messages.js';
import { publish } from './publisher.js';
import { Subscribers } from './subscribers.js';

const subscribers = new Subscribers();
let markedCpu = process.cpuUsage();
let markedAt = performance.now();

async function handle(req: LoadRequest): Promise<LoadOperations[typeof req.op]['answer']> {
  switch (req.op) {
    case 'subscribe':
      return subscribers.subscribe(req);
    case 'publish':
      return publish(req);
    case 'mark':
      subscribers.received = 0;
      subscribers.dropped = 0;
      subscribers.latency.clear();
      markedCpu = process.cpuUsage();
      markedAt = performance.now();
      return null;
    case 'counts':
      return { received: subscribers.received, dropped: subscribers.dropped };
    case 'report': {
      const cpu = process.cpuUsage(markedCpu);
      return {
        received: subscribers.received,
        dropped: subscribers.dropped,
        latencies: subscribers.latency.taken(),
        latenciesSeen: subscribers.latency.seen,
        cpuS: (cpu.user + cpu.system) / 1e6,
        wallS: (performance.now() - markedAt) / 1000,
      };
    }
    case 'close':
      await subscribers.close(req.waitMs);
      return null;
  }
}

const send = (answer: LoadAnswer): void => {
  process.send?.(answer);
};
process.on('message', (req: LoadRequest) => {
  handle(req).then(
    (answer) => send({ id: req.id, ok: true, answer }),
    (err: unknown) => send({ id: req.id, ok: false, error: String(err) }),
  );
});
// The benchmark is gone (ended or crashed): so is its load.
process.on('disconnect', () => process.exit(0));
send({ id: 0, ok: true, answer: 'ready' });
