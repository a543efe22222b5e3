/**
 * The IPC contract between the benchmark and its load workers (load-client.ts drives,
 * load-worker.ts obeys): one request, one answer, matched by `id`. Sent with Node's "advanced"
 * serialization, so latency samples travel as typed arrays.
 */

/** How the subscribers of a target speak: Socket.IO over raw WebSocket, or the ws baseline's JSON. */
export type WireKind = 'socketio' | 'json';

/** The channel of subscriber i: one for all, or `<prefix><floor(i / per)>` (`per` to a channel). */
export type ChannelSpec = { channel: string } | { prefix: string; per: number };

/** The channel a spec gives subscriber `i`. */
export function channelFor(spec: ChannelSpec, i: number): string {
  return 'channel' in spec ? spec.channel : `${spec.prefix}${Math.floor(i / spec.per)}`;
}

/**
 * Join subscribers to a channel each: those this worker holds already join on their connection;
 * the others are opened first (on node `i % urls.length`, as user `bench-<run>-<i>`), a bounded
 * number at a time.
 */
export interface SubscribeRequest {
  wire: WireKind;
  /** The nodes' HTTP base URLs. */
  urls: string[];
  /** Subscriber numbers, the same across workers (each worker is given its own). */
  indices: number[];
  channel: ChannelSpec;
  /** Prefix of the users (the token's `sub`), unique to the run. */
  userPrefix: string;
  /** Sign a token per subscriber (pushcast) or send none (the baselines). */
  auth: boolean;
  inFlight: number;
  timeoutMs: number;
}

export interface SubscribeResult {
  /** Subscribers opened, and subscribers already open that joined. */
  connected: number;
  rejoined: number;
  failed: number;
  /** Failures by reason (a refusal code, a network error, `timeout`). */
  errors: Record<string, number>;
  /** Subscribers that joined, by channel. */
  joined: Record<string, number>;
  /** Connect and join, in ms, of each subscriber opened. */
  timings: number[];
  /** From the first request to the last answer, in s. */
  wallS: number;
}

/** Push over HTTP to the nodes in turn, paced or as fast as answered. */
export interface PublishRequest {
  urls: string[];
  apiKey: string;
  /** Channels pushed to, in turn (`cycle`) or at random. */
  channels: string[];
  pick: 'cycle' | 'random';
  /** 1: POST /api/push; more: POST /api/push/batch with this many pushes per request. */
  batch: number;
  /** Pushes per second this worker sends; omitted: as fast as the server answers. */
  rate?: number;
  /** Keep-alive connections, each with one request in flight. */
  lanes: number;
  durationMs: number;
  /** Serialized size of each push's `data`, about. */
  dataBytes: number;
}

export interface PublishResult {
  requests: number;
  /** Pushes answered with an id. */
  pushes: number;
  /** Pushes not answered with an id, by HTTP status (or `error`). */
  failures: Record<string, number>;
  /** Pushes answered with an id, by channel. */
  pushedTo: Record<string, number>;
  /** Request latency in ms (one per request, a batch being one). */
  latencies: Float64Array;
  latenciesSeen: number;
  /** From the first request sent to the last answer, in s. */
  wallS: number;
}

/** What the subscribers took in since the last `mark`. */
export interface WindowReport {
  received: number;
  /** Subscribers whose connection closed without being asked to. */
  dropped: number;
  /** Publish-to-receive latency in ms, sampled. */
  latencies: Float64Array;
  latenciesSeen: number;
  /** This worker's own CPU seconds and the wall seconds since the mark. */
  cpuS: number;
  wallS: number;
}

/** Every request, by operation, with its answer. */
export interface LoadOperations {
  subscribe: { request: SubscribeRequest; answer: SubscribeResult };
  publish: { request: PublishRequest; answer: PublishResult };
  /** Start a measuring window: counters and latency sample cleared, CPU and clock read. */
  mark: { request: Record<string, never>; answer: null };
  /** Quick counters, for waiting until the deliveries stop. */
  counts: { request: Record<string, never>; answer: { received: number; dropped: number } };
  report: { request: Record<string, never>; answer: WindowReport };
  /**
   * Close every subscriber: first wait up to `waitMs` for the server to close them (a server that
   * closes first keeps the TIME_WAIT sockets off this side's ephemeral ports), then terminate.
   */
  close: { request: { waitMs: number }; answer: null };
}
export type Operation = keyof LoadOperations;

/** A request as sent. */
export type LoadRequest = {
  [K in Operation]: { id: number; op: K } & LoadOperations[K]['request'];
}[Operation];

/** An answer as received. */
export type LoadAnswer =
  { id: number; ok: true; answer: unknown } | { id: number; ok: false; error: string };
