/**
 * The client side of the reconnect-storm benchmark (reconnect-storm.ts): one child process holding
 * a share of the clients, driven over IPC. The clients run in their own processes so that the
 * parent's clock, publisher and samplers are not slowed by thousands of sockets, and so that their
 * CPU can be measured apart from the servers'.
 *
 * Each client is either the pushcast SDK (src/client: rejoins with `since` by itself) or a plain
 * socket.io-client with its default reconnection that joins again on every `connect` (the baseline
 * has no history). Every delivered `data.seq` is kept, in order, for the check at the end.
 */
import { io, type Socket } from 'socket.io-client';
import { createClient, type PushcastClient, type BackoffOptions } from '../../src/client/index.js';
import { token } from '../support.js';

/** What one client worker is asked to do. */
export type WorkerRequest = { id: number } & (
  | {
      type: 'connect';
      kind: 'pushcast' | 'socketio';
      url: string;
      /** Global index of this worker's first client (user ids and channels derive from it). */
      first: number;
      count: number;
      channels: number;
      backoff?: BackoffOptions;
    }
  | { type: 'progress'; since: number }
  | { type: 'delivered' }
  | {
      type: 'report';
      since: number;
      /** Per channel, the highest seq published. */
      last: number[];
      /** Per channel, seqs whose push was not answered 200: they may or may not be delivered. */
      uncertain: number[][];
    }
  | { type: 'close' }
);

/** Per client, what the check at the end found. */
export interface WorkerReport {
  clients: number;
  /** Milliseconds from `since` to the first rejoin after it, per client; -1: not back. */
  rejoinMs: number[];
  /** Clients that saw no disconnect after `since` (they were not on the killed node). */
  neverDisconnected: number;
  /** Rejoins answered `recovered: false` (the SDK's onLost): the gap could not be filled. */
  recoveryFailed: number;
  /** The earliest such answer, in ms after `since` (a history of 100 holds 50 s here). */
  firstLostMs: number | undefined;
  /** Messages the server replayed on rejoin (`missed` of the join answers), summed. */
  replayed: number;
  /** Messages the socket received that the SDK dropped as duplicates (same push id). */
  droppedBySdk: number;
  /** Failed connection attempts after `since`, by error message or refusal code. */
  connectErrors: Record<string, number>;
  /** Most failed attempts in a row of one client after `since`. */
  maxAttempts: number;
  delivered: number;
  clientsMissing: number;
  /** Of those, clients back and never told (no onLost) that messages were lost. */
  clientsMissingUntold: number;
  clientsDuplicate: number;
  clientsOutOfOrder: number;
  messagesMissing: number;
  messagesDuplicate: number;
  /**
   * Per client back after `since`, the phases of its comeback in ms: the kill noticed
   * (disconnect), waiting (backoff and failed attempts), transport handshake (through nginx),
   * authentication (Socket.IO connect: admission and token), join (with `since`: replay).
   */
  phases: Record<Phase, number[]>;
  /** A few clients with a problem, for the details. */
  examples: Array<{ client: number; channel: number; missing: number[]; duplicate: number[] }>;
}

/** The phases of one client's comeback (see {@link WorkerReport.phases}). */
export type Phase = 'noticed' | 'waiting' | 'handshake' | 'authentication' | 'join';

/** The answer to a request: `ok` with the request's result, or the error message. */
export type WorkerAnswer =
  { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };

/** One client's record. */
interface Tracked {
  client: number;
  channel: number;
  close: () => void;
  /** `data.seq` of every message handed to the application, in order. */
  seqs: number[];
  /** `msg` events on the socket, before the SDK's duplicate check. */
  raw: number;
  /** Times (ms since epoch) of every connection attempt, open transport, connect and join answer. */
  attemptsAt: number[];
  opensAt: number[];
  connectsAt: number[];
  joins: number[];
  /** Times of every disconnect. */
  disconnects: number[];
  connected: boolean;
  /** Joined on the current connection. */
  joined: boolean;
  recoveryFailed: number;
  /** Times of the onLost calls. */
  lostAt: number[];
  replayed: number;
  /** Failed attempts since the last successful connection, and the most in a row. */
  attempts: number;
  maxAttempts: number;
  /** Failed attempts: time and message/code. */
  errors: Array<[number, string]>;
}

const tracked: Tracked[] = [];

const channelName = (channel: number): string => `storm:${channel}`;
const seqOf = (data: unknown): number =>
  typeof data === 'object' && data !== null && typeof (data as { seq?: unknown }).seq === 'number'
    ? (data as { seq: number }).seq
    : NaN;

function track(client: number, channel: number): Tracked {
  const t: Tracked = {
    client,
    channel,
    close: () => {},
    seqs: [],
    raw: 0,
    attemptsAt: [],
    opensAt: [],
    connectsAt: [],
    joins: [],
    disconnects: [],
    connected: false,
    joined: false,
    recoveryFailed: 0,
    lostAt: [],
    replayed: 0,
    attempts: 0,
    maxAttempts: 0,
    errors: [],
  };
  tracked.push(t);
  return t;
}

function failedAttempt(t: Tracked, what: string): void {
  t.attempts += 1;
  t.maxAttempts = Math.max(t.maxAttempts, t.attempts);
  t.errors.push([Date.now(), what]);
}

/** A pushcast SDK client: WebSocket only (behind nginx without sticky sessions). */
async function sdkClient(
  url: string,
  client: number,
  channel: number,
  backoff: BackoffOptions | undefined,
  onFirstJoin: () => void,
): Promise<void> {
  const t = track(client, channel);
  const jwt = await token(`storm-${client}`, [channelName(channel)]);
  const sdk: PushcastClient = createClient(url, {
    token: jwt,
    transports: ['websocket'],
    ...(backoff ? { backoff } : {}),
    onStateChange: (state) => {
      if (state === 'connected') {
        t.connectsAt.push(Date.now());
        t.connected = true;
        t.attempts = 0;
      } else if (state === 'disconnected') {
        t.connected = false;
        t.joined = false;
        t.disconnects.push(Date.now());
      }
    },
    // Capacity refusals arrive here with their code; plain transport failures only as the
    // socket's connect_error below.
    onError: (err) => failedAttempt(t, err.code),
  });
  // The SDK starts every retry with socket.connect() (it runs its own schedule): wrapped to time
  // the phases of a rejoin (backoff, transport handshake, authentication, join).
  const connectNow = sdk.socket.connect.bind(sdk.socket);
  sdk.socket.connect = () => {
    t.attemptsAt.push(Date.now());
    return connectNow();
  };
  sdk.socket.io.on('open', () => t.opensAt.push(Date.now()));
  sdk.socket.on('connect_error', (err: Error) => {
    if (err.message !== 'unavailable') failedAttempt(t, err.message);
  });
  sdk.socket.on('msg', () => (t.raw += 1));
  sdk.subscribe(channelName(channel), {
    onMessage: (m) => t.seqs.push(seqOf(m.data)),
    onJoin: (info) => {
      t.joined = true;
      t.joins.push(Date.now());
      t.replayed += info.missed ?? 0;
      if (t.joins.length === 1) onFirstJoin();
    },
    onLost: () => {
      t.recoveryFailed += 1;
      t.lostAt.push(Date.now());
    },
    onError: (err) => failedAttempt(t, `join: ${err.message}`),
  });
  t.close = () => sdk.close();
}

/** A plain socket.io-client with its default reconnection, joining again on every connect. */
function plainClient(url: string, client: number, channel: number, onFirstJoin: () => void): void {
  const t = track(client, channel);
  // forceNew: one connection per client, as separate browsers would have (socket.io-client
  // otherwise multiplexes sockets to the same URL over one connection).
  const socket: Socket = io(url, { transports: ['websocket'], forceNew: true });
  socket.io.on('reconnect_attempt', () => t.attemptsAt.push(Date.now()));
  socket.io.on('open', () => t.opensAt.push(Date.now()));
  socket.on('connect', () => {
    t.connectsAt.push(Date.now());
    t.connected = true;
    t.attempts = 0;
    socket
      .timeout(10_000)
      .emit(
        'join',
        { channel: channelName(channel) },
        (err: unknown, ack: { ok?: boolean } | undefined) => {
          if (err || !ack?.ok) return failedAttempt(t, err ? 'join timeout' : 'join refused');
          t.joined = true;
          t.joins.push(Date.now());
          if (t.joins.length === 1) onFirstJoin();
        },
      );
  });
  socket.on('disconnect', () => {
    t.connected = false;
    t.joined = false;
    t.disconnects.push(Date.now());
  });
  socket.on('connect_error', (err: Error) => failedAttempt(t, err.message));
  socket.on('msg', (m: { data?: unknown }) => {
    t.raw += 1;
    t.seqs.push(seqOf(m.data));
  });
  t.close = () => socket.close();
}

/**
 * Opens `count` clients, at most 200 joining at a time (a handshake burst of thousands would be
 * refused for rate and only measure the backoff); resolves once every one has joined.
 */
async function connectAll(
  request: Extract<WorkerRequest, { type: 'connect' }>,
): Promise<{ ms: number }> {
  const started = Date.now();
  const inFlight = 200;
  let next = 0;
  await Promise.all(
    [...Array(Math.min(inFlight, request.count)).keys()].map(async () => {
      while (next < request.count) {
        const client = request.first + next++;
        const channel = client % request.channels;
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(
            () => reject(new Error(`client ${client} not joined within 60 s`)),
            60_000,
          );
          const joinedNow = (): void => {
            clearTimeout(timer);
            resolve();
          };
          if (request.kind === 'socketio') plainClient(request.url, client, channel, joinedNow);
          else sdkClient(request.url, client, channel, request.backoff, joinedNow).catch(reject);
        });
      }
    }),
  );
  return { ms: Date.now() - started };
}

/** Clients connected and joined on a connection made after `since`. */
function progress(since: number): { back: number; down: number } {
  let back = 0;
  let down = 0;
  for (const t of tracked) {
    if (!t.connected) down += 1;
    if (t.connected && t.joined && (t.joins.at(-1) ?? 0) > since) back += 1;
  }
  return { back, down };
}

/** Checks every client's deliveries against what was published since the clients joined. */
function report(request: Extract<WorkerRequest, { type: 'report' }>): WorkerReport {
  const out: WorkerReport = {
    clients: tracked.length,
    rejoinMs: [],
    neverDisconnected: 0,
    recoveryFailed: 0,
    firstLostMs: undefined,
    replayed: 0,
    droppedBySdk: 0,
    connectErrors: {},
    maxAttempts: 0,
    delivered: 0,
    clientsMissing: 0,
    clientsMissingUntold: 0,
    clientsDuplicate: 0,
    clientsOutOfOrder: 0,
    messagesMissing: 0,
    messagesDuplicate: 0,
    phases: { noticed: [], waiting: [], handshake: [], authentication: [], join: [] },
    examples: [],
  };
  const lastUpTo = (times: number[], at: number): number | undefined => {
    let found: number | undefined;
    for (const x of times) if (x <= at) found = x;
    return found;
  };
  for (const t of tracked) {
    const rejoin = t.joins.find((at) => at > request.since);
    out.rejoinMs.push(rejoin === undefined ? -1 : rejoin - request.since);
    const lost = t.disconnects.find((at) => at >= request.since);
    const connected = rejoin === undefined ? undefined : lastUpTo(t.connectsAt, rejoin);
    const opened = connected === undefined ? undefined : lastUpTo(t.opensAt, connected);
    const attempt = opened === undefined ? undefined : lastUpTo(t.attemptsAt, opened);
    if (rejoin !== undefined && lost !== undefined && attempt !== undefined && attempt >= lost) {
      out.phases.noticed.push(lost - request.since);
      out.phases.waiting.push(attempt - lost);
      out.phases.handshake.push(opened! - attempt);
      out.phases.authentication.push(connected! - opened!);
      out.phases.join.push(rejoin - connected!);
    }
    if (!t.disconnects.some((at) => at >= request.since)) out.neverDisconnected += 1;
    out.recoveryFailed += t.recoveryFailed;
    for (const at of t.lostAt)
      out.firstLostMs = Math.min(out.firstLostMs ?? Infinity, at - request.since);
    out.replayed += t.replayed;
    out.droppedBySdk += t.raw - t.seqs.length;
    out.maxAttempts = Math.max(out.maxAttempts, t.maxAttempts);
    for (const [at, what] of t.errors)
      if (at >= request.since) out.connectErrors[what] = (out.connectErrors[what] ?? 0) + 1;
    out.delivered += t.seqs.length;

    // Publishing started only after every client had joined, so each must hold seq 0 to the
    // last, each once and in order; a seq whose push was not answered 200 may be absent.
    const uncertain = new Set(request.uncertain[t.channel] ?? []);
    const last = request.last[t.channel] ?? -1;
    const seen = new Set<number>();
    const duplicate: number[] = [];
    let outOfOrder = false;
    let highest = -1;
    for (const seq of t.seqs) {
      if (seen.has(seq)) duplicate.push(seq);
      // A seq whose push timed out may have been published late: its place is not checked.
      else if (seq < highest && !uncertain.has(seq)) outOfOrder = true;
      seen.add(seq);
      highest = Math.max(highest, seq);
    }
    const missing: number[] = [];
    for (let seq = 0; seq <= last; seq++)
      if (!seen.has(seq) && !uncertain.has(seq)) missing.push(seq);
    if (missing.length > 0) out.clientsMissing += 1;
    if (missing.length > 0 && rejoin !== undefined && t.recoveryFailed === 0)
      out.clientsMissingUntold += 1;
    if (duplicate.length > 0) out.clientsDuplicate += 1;
    if (outOfOrder) out.clientsOutOfOrder += 1;
    out.messagesMissing += missing.length;
    out.messagesDuplicate += duplicate.length;
    if ((missing.length > 0 || duplicate.length > 0 || outOfOrder) && out.examples.length < 5)
      out.examples.push({
        client: t.client,
        channel: t.channel,
        missing: missing.slice(0, 10),
        duplicate: duplicate.slice(0, 10),
      });
  }
  return out;
}

async function handle(request: WorkerRequest): Promise<unknown> {
  switch (request.type) {
    case 'connect':
      return connectAll(request);
    case 'progress':
      return progress(request.since);
    case 'delivered':
      return tracked.reduce((n, t) => n + t.seqs.length, 0);
    case 'report':
      return report(request);
    case 'close':
      for (const t of tracked) t.close();
      // Exit once the answer is out; the parent kills this process by PID if it lingers.
      setTimeout(() => process.exit(0), 100).unref();
      return null;
  }
}

if (!process.send) throw new Error('storm-clients.ts runs as a child of reconnect-storm.ts (IPC)');
process.on('message', (request: WorkerRequest) => {
  handle(request).then(
    (result) => process.send?.({ id: request.id, ok: true, result } satisfies WorkerAnswer),
    (err: unknown) =>
      process.send?.({
        id: request.id,
        ok: false,
        error: err instanceof Error ? err.message : String(err),
      } satisfies WorkerAnswer),
  );
});
// The parent went away (crashed, killed): nothing is left to report to.
process.on('disconnect', () => process.exit(0));
