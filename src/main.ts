import { ConfigError, loadConfig, type LoadedConfig } from './config/load.js';
import { createPushServer, type PushServer } from './server.js';
import { DEVELOPMENT_WARNING, developmentBanner } from './lifecycle/banner.js';
import { writeStdout } from './logger.js';

/**
 * The process entry: settings from files and environment, start, and the signal handling of
 * docs/architecture.md, "Drain" (first SIGTERM/SIGINT drains, a second one exits at once).
 * Exit codes: 0 stopped cleanly, 1 drain timed out or failed, 2 invalid settings or start failure.
 */
async function main(): Promise<void> {
  let loaded: LoadedConfig;
  let server: PushServer;
  try {
    loaded = loadConfig();
    server = createPushServer(loaded.config);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`pushcast: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals += 1;
    if (signals > 1) {
      server.log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    server.log.info({ signal }, 'signal received: draining');
    server.stop().then(
      ({ drained, inflightLeft }) => {
        if (!drained) server.log.error({ inflightLeft }, 'exiting with pushes left in flight');
        process.exit(drained ? 0 : 1);
      },
      (err: unknown) => {
        server.log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // Defence in depth: a library promise nobody awaits (the Redis adapter has some) must not end
  // the process that holds thousands of sockets; it is logged loudly instead.
  process.on('unhandledRejection', (reason) => {
    server.log.error({ err: reason }, 'unhandled promise rejection');
  });

  // Signals are handled from before start, so a SIGTERM during start still drains cleanly.
  let address;
  try {
    address = await server.start();
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`pushcast: cannot start: ${message}\n`);
    process.exit(2);
  }
  if (loaded.development.apiKey || loaded.development.jwtSecret) {
    // Loud twice: the banner for the person at the terminal, a warning for whoever reads the logs.
    server.log.warn({ developmentSecrets: true }, DEVELOPMENT_WARNING.join(' '));
    // Through the logger's stdout: with its reader gone, the banner is dropped, nothing crashes.
    writeStdout(developmentBanner(address.url, loaded.config, loaded.development));
  }
}

void main();
