import type { Logger } from 'pino';
import type { PhoenixConnection } from './phoenix-connection.js';
import type { PhoenixHub } from './phoenix-hub.js';
import type { SlowConsumerOptions, SlowConsumerWatch } from './slow-consumers.js';

/**
 * The slow-consumer rule (`limits.maxSocketBufferKb`) for Phoenix connections: every
 * `intervalMs` each one's unsent output (what its `ws` socket holds, frame queue and net.Socket
 * buffer) is looked at, and one over the limit is cut alone, as Socket.IO sockets are
 * (src/realtime/slow-consumers.ts). phoenix.js reconnects by itself.
 */
export function watchPhoenixSlowConsumers(
  hub: PhoenixHub<PhoenixConnection>,
  options: SlowConsumerOptions,
): SlowConsumerWatch {
  const { maxBytes, log } = options;
  const timer = setInterval(() => {
    for (const connection of hub.connections())
      if (connection.unsentBytes > maxBytes) cut(connection, log);
  }, options.intervalMs ?? 250);
  timer.unref();

  function cut(connection: PhoenixConnection, logger: Logger): void {
    const bytes = connection.unsentBytes;
    logger.warn(
      { conn: connection.id, transport: 'phoenix', bytes, limit: maxBytes },
      'slow consumer disconnected: unsent output over the limit',
    );
    connection.terminate();
    try {
      options.onDisconnect?.({ conn: connection.id, bytes });
    } catch (err) {
      logger.error({ err }, 'slow consumer listener failed');
    }
  }

  return { stop: () => clearInterval(timer) };
}
