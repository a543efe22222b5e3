import { randomBytes } from 'node:crypto';
import type { Server as HttpServer } from 'node:http';
import { hostname } from 'node:os';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Server as SocketServer } from 'socket.io';
import type { Hooks } from './auth/hooks.js';
import { buildConfig } from './config/load.js';
import type { Config, ConfigInput } from './config/schema.js';
import type { PushResult } from './delivery/pipeline.js';
import { unavailable } from './errors.js';
import { parsePush } from './http/push-input.js';
import { apiSchemas, type ApiSchemas } from './http/schemas.js';
import { closeSocketsSpread } from './lifecycle/disconnect.js';
import type { LifecycleState } from './lifecycle/state.js';
import { createLogger } from './logger.js';
import { assembleNode, type NodeParts } from './node-assembly.js';

/** Options for embedding beyond the settings. */
export interface PushServerOptions {
  logger?: Logger;
  /** Hooks given in code (instead of, or on top of, the `hooks` module setting). */
  hooks?: Hooks;
  /** Prometheus registry for the node's metrics (default: a fresh one per node). */
  registry?: Registry;
}

/** A push as the embedding API takes it (same rules as `POST /api/push`). */
export interface PushInput {
  channel: string | string[];
  event: string;
  data: unknown;
}

/** A running (or startable) pushcast node. */
export interface PushServer {
  readonly config: Config;
  readonly node: string;
  readonly log: Logger;
  state(): LifecycleState;
  /** Starts listening; resolves with the bound address once ready. */
  start(): Promise<{ url: string; port: number }>;
  /** Drains and stops (docs/architecture.md, "Drain"); `drained` is false if the drain timed out. */
  stop(): Promise<{ drained: boolean; inflightLeft: number }>;
  /** Publishes a push as the API would (without API-key auth). */
  push(input: PushInput): Promise<PushResult>;
  /**
   * The Socket.IO server (available after start): engine.io's sockets (long-polling, and every
   * socket when `socketDirect` is off). Clients on the direct WebSocket endpoint are not among its
   * sockets; `GET /api/stats` counts every connection.
   */
  readonly io: SocketServer;
  /** The HTTP server (available after start). */
  readonly http: HttpServer;
}

/** Builds a pushcast node from settings (validated with the same schema as the process). */
export function createPushServer(
  input: ConfigInput = {},
  options: PushServerOptions = {},
): PushServer {
  return new PushNode(buildConfig(input).config, options);
}

/**
 * One node's lifecycle: `starting -> ready -> draining -> stopped`. Its parts are assembled by
 * {@link assembleNode} when it starts; this class only starts, drains and stops them.
 */
class PushNode implements PushServer {
  readonly node = `${hostname()}-${randomBytes(3).toString('hex')}`;
  readonly log: Logger;
  private current: LifecycleState = 'starting';
  // Readiness drops at the first signal; requests and connections are refused only after the
  // shutdown delay, while the load balancer takes the node out of rotation.
  private accepting = false;
  private starting: Promise<NodeParts> | undefined;
  private parts: NodeParts | undefined;
  private readonly schemas: ApiSchemas;

  constructor(
    readonly config: Config,
    private readonly options: PushServerOptions,
  ) {
    this.log = options.logger ?? createLogger(config.logLevel, this.node);
    this.schemas = apiSchemas(config.limits);
  }

  state(): LifecycleState {
    return this.current;
  }

  start(): Promise<{ url: string; port: number }> {
    if (this.current !== 'starting' || this.starting)
      throw new Error('pushcast: start() called twice');
    this.starting = assembleNode({
      config: this.config,
      log: this.log,
      node: this.node,
      hooks: this.options.hooks,
      registry: this.options.registry,
      state: () => this.current,
      accepting: () => this.accepting,
    });
    return this.listen(this.starting);
  }

  private async listen(assembling: Promise<NodeParts>): Promise<{ url: string; port: number }> {
    const parts = await assembling;
    this.parts = parts;
    const { config } = this;
    await new Promise<void>((resolve, reject) => {
      parts.http.once('error', reject);
      parts.http.listen(config.port, config.host, config.listenBacklog, () => {
        parts.http.off('error', reject);
        resolve();
      });
    });
    this.current = 'ready';
    this.accepting = true;
    const port = (parts.http.address() as AddressInfo).port;
    const shownHost = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
    this.log.info(
      {
        port,
        redis: Boolean(config.redisUrl ?? config.redisClusterNodes),
        mode: config.redisUrl || config.redisClusterNodes ? config.redis.mode : 'memory',
      },
      'pushcast ready',
    );
    return { url: `http://${shownHost}:${port}`, port };
  }

  /**
   * The drain, in order: readiness drops at once; after the shutdown delay, stop listening (the
   * load balancer sends new connections elsewhere) and refuse new requests; finish the pushes in
   * flight (bounded); close the sockets at the transport level (spread, with
   * PUSHCAST_DISCONNECT_ON_SHUTDOWN) so clients reconnect to other nodes; close the backend.
   */
  async stop(): Promise<{ drained: boolean; inflightLeft: number }> {
    if (this.current === 'stopped' || this.current === 'draining')
      return { drained: true, inflightLeft: 0 };
    // A stop during start waits for the start to finish, then drains what it built.
    if (this.current === 'starting' && this.starting)
      await this.starting.catch((err: unknown) => this.log.debug({ err }, 'start failed'));
    const { config, log, parts } = this;
    this.current = 'draining';
    log.info('draining');
    const started = Date.now();
    if (config.shutdown.delayMs > 0) await sleep(config.shutdown.delayMs);
    this.accepting = false;
    const closed = parts
      ? new Promise<void>((r) => parts.http.close(() => r()))
      : Promise.resolve();
    const drained = parts ? await parts.pipeline.drain(config.shutdown.drainTimeoutMs) : true;
    const inflightLeft = parts?.pipeline.inflightCount ?? 0;
    if (!drained) log.error({ inflight: inflightLeft }, 'drain timed out with pushes in flight');
    if (parts) {
      parts.slowConsumers.stop();
      // Without PUSHCAST_DISCONNECT_ON_SHUTDOWN the sockets would simply die with the process;
      // an embedded server closes them all at once, the same way.
      const spreadMs = config.shutdown.disconnect ? config.shutdown.disconnectSpreadMs : 0;
      // Phoenix-protocol connections (PushEx clients) and Socket.IO clients on a plain WebSocket
      // are closed in the same spread.
      const sockets = await closeSocketsSpread(parts.io, spreadMs, [
        ...(parts.phoenix?.connections() ?? []),
        ...(parts.socketIoDirect?.connections() ?? []),
      ]);
      log.info({ sockets }, 'sockets closed');
      await Promise.all([parts.phoenix?.close(), parts.socketIoDirect?.close()]);
      await parts.io.close().catch((err: unknown) => log.debug({ err }, 'io close failed'));
      parts.http.closeAllConnections();
    }
    await closed;
    // After the sockets closed (their leaves recorded), before Redis goes.
    await parts?.webhooks?.stop();
    await parts?.backend.close();
    this.current = 'stopped';
    log.info({ drained, inflightLeft, ms: Date.now() - started }, 'stopped');
    return { drained, inflightLeft };
  }

  async push(input: PushInput): Promise<PushResult> {
    if (!this.parts) throw unavailable('starting');
    return this.parts.pipeline.push(parsePush(input, this.schemas, this.config.limits));
  }

  get io(): SocketServer {
    if (!this.parts) throw new Error('pushcast: not started');
    return this.parts.io;
  }

  get http(): HttpServer {
    if (!this.parts) throw new Error('pushcast: not started');
    return this.parts.http;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
