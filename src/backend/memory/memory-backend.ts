import type { Backend, BackendContext } from '../backend.js';
import { LocalPushLimiter } from './local-push-limiter.js';
import { MemoryBus } from './memory-bus.js';
import { MemoryIdempotencyStore } from './memory-idempotency.js';
import { MemoryWebhookStore } from './memory-webhooks.js';

const MB = 1024 * 1024;

/** A single node: history, idempotency and limits in this process, fan-out to its own sockets. */
export function memoryBackend({ config, io, history }: BackendContext): Backend {
  const bus = new MemoryBus((room, message) => void io.to(room).emit('msg', message), history, {
    maxBytes: config.memory.historyMb * MB,
  });
  return {
    bus,
    idempotency: new MemoryIdempotencyStore(
      config.idempotencyTtlS,
      config.memory.idempotencyMb * MB,
    ),
    pushLimiter: new LocalPushLimiter(config.limits.pushesPerSecond, config.limits.pushBurst),
    // Every message of this node reaches its own rooms: nothing to subscribe.
    ensureSubscribed: () => Promise.resolve(),
    clusterReady: undefined,
    webhookStore: (_node, settings) => new MemoryWebhookStore(settings),
    close: () => bus.close(),
  };
}
