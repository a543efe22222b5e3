import type { Logger } from 'pino';
import type { Server } from 'socket.io';
import type { Config } from '../config/schema.js';
import type { Bus } from '../delivery/bus.js';
import type { HistoryPolicy } from '../delivery/history-policy.js';
import type { IdempotencyStore } from '../delivery/idempotency.js';
import type { PushLimiter } from '../limits/push-limiter.js';
import type { WebhookStore, WebhookStoreSettings } from '../webhooks/store.js';
import { memoryBackend } from './memory/memory-backend.js';
import { redisBackend } from './redis/redis-backend.js';

/**
 * Everything a node shares with the other nodes, or keeps alone: the bus (history and fan-out),
 * idempotency answers, the push rate limit and channel subscriptions. One implementation per
 * folder: `memory/` (a single node, nothing else to run) and `redis/` (several nodes on Redis).
 */
export interface Backend {
  readonly bus: Bus;
  readonly idempotency: IdempotencyStore;
  readonly pushLimiter: PushLimiter;
  /** Resolves once this node receives the room's messages (its subscription is active). */
  ensureSubscribed(room: string): Promise<void>;
  /**
   * Whether other nodes can be asked for cluster-wide views now; undefined on a single node
   * (there is nobody to ask).
   */
  readonly clusterReady: (() => boolean) | undefined;
  /** Where webhook occupancy and events live: this process, or Redis shared by every node. */
  webhookStore(node: string, settings: WebhookStoreSettings): WebhookStore;
  close(): Promise<void>;
}

/** What a backend is built from besides the settings. */
export interface BackendContext {
  config: Config;
  /** The Socket.IO server the backend delivers through (and installs its adapter on). */
  io: Server;
  history: HistoryPolicy;
  log: Logger;
  /**
   * When live messages of a room were missed and history cannot fill the gap, the room's
   * connections are closed at the transport level (they reconnect and rejoin with `since`): this
   * closes those that are not Socket.IO's sockets (the connection hub's) and returns how many.
   */
  rejoinOthers?: (room: string) => number;
}

/**
 * The backend the settings ask for: a Redis Cluster when `redisClusterNodes` is set, one Redis
 * when `redisUrl` is, else memory.
 */
export function createBackend(context: BackendContext): Promise<Backend> {
  const { redisUrl, redisClusterNodes } = context.config;
  if (redisClusterNodes) return redisBackend({ clusterNodes: redisClusterNodes }, context);
  return redisUrl
    ? redisBackend({ url: redisUrl }, context)
    : Promise.resolve(memoryBackend(context));
}
