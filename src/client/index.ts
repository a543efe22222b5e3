import { io, type Socket } from 'socket.io-client';
import { backoffDelay, type BackoffOptions } from './backoff.js';
import {
  PushcastAuthError,
  PushcastClientError,
  PushcastDisconnectedError,
  PushcastJoinError,
  PushcastUnavailableError,
} from './errors.js';
import { Subscription } from './subscription.js';
import type { PushMessage, SubscriptionHandlers } from './types.js';

export {
  PushcastAuthError,
  PushcastClientError,
  PushcastDisconnectedError,
  PushcastJoinError,
  PushcastUnavailableError,
  Subscription,
};
export type { BackoffOptions };
export type { LeftInfo, LostInfo, PushMessage, SubscriptionHandlers } from './types.js';

/** Options of {@link createClient}: a fixed token or a function that fetches a fresh one. */
export interface ClientOptions {
  token?: string;
  /** Called before every (re)connection: keep tokens short-lived. */
  getToken?: () => string | Promise<string>;
  /** Socket.IO path (default `/socket.io`). */
  path?: string;
  /** Default: WebSocket, falling back to long-polling. */
  transports?: Array<'websocket' | 'polling'>;
  /**
   * Reconnect schedule: full jitter, capped (default `{ baseMs: 500, capMs: 30000 }`). The n-th
   * retry in a row waits `random(0, min(capMs, baseMs * 2^n))`, on top of the server's
   * `retryAfterMs` when it gave one; a successful connection starts over.
   */
  backoff?: BackoffOptions;
  /**
   * Connection-level errors: a refused token ({@link PushcastAuthError}), a refusal for capacity
   * ({@link PushcastUnavailableError}: `node_full`, `connect_rate_limited`,
   * `too_many_user_connections`; the SDK retries by itself), a session the server closed, a
   * backend that disconnected the user ({@link PushcastDisconnectedError}: the client is closed).
   */
  onError?(error: PushcastClientError): void;
  /** Connection state changes. */
  onStateChange?(state: 'connecting' | 'connected' | 'disconnected' | 'closed'): void;
}

/** A pushcast connection with any number of channel subscriptions. */
export interface PushcastClient {
  subscribe<T = unknown>(channel: string, handlers?: SubscriptionHandlers<T>): Subscription<T>;
  /** Closes the connection and every subscription. */
  close(): void;
  /** The underlying Socket.IO socket (for diagnostics). */
  readonly socket: Socket;
}

/** `data` of a `connect_error` the server sent (a middleware refused the connection). */
interface RefusalData {
  code?: unknown;
  retryAfterMs?: unknown;
}

interface JoinAck {
  ok: boolean;
  error?: string;
  offset?: string;
  recovered?: boolean;
  missed?: number;
}

/**
 * Connects to a pushcast server. Reconnects by itself (to whichever node the load balancer picks),
 * rejoins every subscription with the last offset it saw so missed messages are replayed, drops
 * duplicates by push id, and calls `onLost` when the server cannot prove nothing was missed.
 *
 * Every reconnection (a lost transport, a node that refused for capacity or is draining, a session
 * the server ended, a token refused while `getToken` may fetch another) goes through one schedule:
 * full-jitter exponential backoff, capped (option `backoff`), so a reconnect storm after a node
 * dies spreads out instead of hammering the next node.
 */
export function createClient(url: string, options: ClientOptions = {}): PushcastClient {
  if (!options.token && !options.getToken)
    throw new PushcastClientError('createClient needs a token or getToken', 'invalid_options');
  const subs = new Map<string, Subscription<unknown>>();
  let closed = false;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  let refreshTimer: ReturnType<typeof setTimeout> | undefined;
  let attempts = 0;
  let currentToken: string | undefined;
  // Set by the server's `error` `disconnected` (a backend ended the user's connections): the
  // disconnect that follows closes the client instead of reconnecting.
  let ended: PushcastDisconnectedError | undefined;
  const fetchToken = async (): Promise<string> =>
    options.getToken ? await options.getToken() : options.token!;

  const socket = io(url, {
    path: options.path,
    transports: options.transports ?? ['websocket', 'polling'],
    // The SDK owns the schedule (reconnectLater): Socket.IO's own reconnection neither knows the
    // server's refusals nor retries after a middleware refused.
    reconnection: false,
    // A function: Socket.IO calls it on every connection attempt, so each one gets a fresh token.
    auth: (cb: (auth: Record<string, unknown>) => void) => {
      fetchToken().then(
        (token) => {
          currentToken = token;
          cb({ token });
        },
        (err: unknown) => {
          options.onError?.(
            new PushcastClientError(`getToken failed: ${String(err)}`, 'token_unavailable'),
          );
          cb({});
        },
      );
    },
  });
  options.onStateChange?.('connecting');

  // Subscriptions whose join the server answered ok on this connection: only those can be `left`.
  const joined = new Set<Subscription<unknown>>();
  const leaveTimers = new Set<ReturnType<typeof setTimeout>>();

  const join = (sub: Subscription<unknown>): void => {
    const since = sub.offset;
    const payload =
      since === undefined ? { channel: sub.channel } : { channel: sub.channel, since };
    joined.delete(sub);
    // A callback, not a promise: it runs as the answer arrives, before any later event (`left`).
    socket.timeout(10_000).emit('join', payload, (err: unknown, ack: JoinAck | undefined) => {
      // No answer (connection dropped mid-join): the next `connect` rejoins.
      if (err || !ack) return;
      if (!sub.subscribed) {
        // Unsubscribed while joining, and the join still went through (a server that let the
        // join win over the leave): leave again, unless the channel was subscribed anew.
        if (ack.ok && !subs.has(sub.channel)) leave(sub.channel);
        return;
      }
      if (!ack.ok) {
        // A backend unsubscribed the user while this join was pending: the subscription ends as
        // if it had been joined and then `left` (not rejoined).
        if (ack.error === 'unsubscribed') return endByServer(sub, 'unsubscribed');
        sub.handlers.onError?.(new PushcastJoinError(sub.channel, ack.error ?? 'unknown'));
        return;
      }
      joined.add(sub);
      // A rejoin with no message seen yet resumes from the position the server answered.
      if (sub.offset === undefined && ack.offset !== undefined) sub.offset = ack.offset;
      // The gap could not be filled (onLost below): resume from the position the join answered,
      // so the next reconnect does not report the same gap again. A message delivered since the
      // join went out is newer than that position: keep its offset.
      else if (since !== undefined && ack.recovered === false && sub.offset === since)
        sub.offset = ack.offset;
      sub.handlers.onJoin?.({
        channel: sub.channel,
        ...(ack.offset !== undefined ? { offset: ack.offset } : {}),
        ...(ack.recovered !== undefined ? { recovered: ack.recovered } : {}),
        ...(ack.missed !== undefined ? { missed: ack.missed } : {}),
      });
      if (since !== undefined && ack.recovered === false)
        sub.handlers.onLost?.({ channel: sub.channel, since });
    });
  };

  /**
   * Leaves a channel on the current connection (a later one never joined it). The server lets a
   * leave win over a join it has not answered yet, so a subscribe then unsubscribe leaves nothing.
   * A leave refused for rate is sent again a second later, unless the channel was subscribed anew.
   */
  const leave = (channel: string): void => {
    if (closed || !socket.connected) return;
    socket
      .timeout(10_000)
      .emit('leave', { channel }, (err: unknown, ack: { ok?: boolean; error?: string }) => {
        if (err || ack?.error !== 'rate_limited') return;
        const timer = setTimeout(() => {
          leaveTimers.delete(timer);
          if (!subs.has(channel)) leave(channel);
        }, 1000);
        leaveTimers.add(timer);
      });
  };

  socket.on('connect', () => {
    attempts = 0;
    if (retryTimer) clearTimeout(retryTimer);
    retryTimer = undefined;
    options.onStateChange?.('connected');
    for (const sub of subs.values()) join(sub);
    scheduleRefresh();
  });
  socket.on('msg', (message: PushMessage) => subs.get(message.channel)?.deliver(message));
  // The server took the socket out of a channel (a refresh no longer allows it, a server-side
  // unsubscribe): the subscription ends, and is not rejoined.
  socket.on('left', (info: { channel?: unknown; reason?: unknown } | undefined) => {
    const channel = info?.channel;
    if (typeof channel !== 'string') return;
    const sub = subs.get(channel);
    // Only a joined subscription can be left: a `left` that crossed a newer join is not about it.
    if (!sub || !joined.has(sub)) return;
    endByServer(sub, typeof info?.reason === 'string' ? info.reason : 'unknown');
  });
  socket.on('error', (info: { code?: string; message?: unknown } | undefined) => {
    if (info?.code === 'disconnected') {
      // Reported once the disconnect that follows has closed the client.
      ended = new PushcastDisconnectedError(
        typeof info.message === 'string' ? info.message : 'disconnected',
      );
      return;
    }
    if (info?.code)
      options.onError?.(
        new PushcastClientError(`server closed the connection: ${info.code}`, info.code),
      );
  });
  socket.on('disconnect', () => {
    joined.clear();
    if (closed) return;
    if (ended) {
      // A backend ended the user's connections on purpose: coming back is the app's decision.
      const why = ended;
      close();
      options.onError?.(why);
      return;
    }
    options.onStateChange?.('disconnected');
    // Whatever the reason (the node died or drained, the token expired and the server ended the
    // session, a ping timeout): come back, with a fresh token, after the backoff.
    reconnectLater();
  });
  socket.on('connect_error', (err: Error & { data?: RefusalData }) => {
    if (closed) return;
    const code = typeof err.data?.code === 'string' ? err.data.code : undefined;
    if (err.message === 'unauthorized') {
      options.onError?.(new PushcastAuthError(code ?? 'unauthorized'));
      // A refused token is final unless a fresh one can be fetched.
      if (options.getToken) reconnectLater();
      return;
    }
    if (err.message === 'unavailable') {
      const retryAfterMs = err.data?.retryAfterMs;
      const floorMs =
        typeof retryAfterMs === 'number' && Number.isFinite(retryAfterMs) && retryAfterMs > 0
          ? retryAfterMs
          : undefined;
      options.onError?.(new PushcastUnavailableError(code ?? 'unavailable', floorMs));
      reconnectLater(floorMs);
      return;
    }
    // Transport errors (node gone, draining, timeout) and refusals this SDK does not know.
    reconnectLater();
  });

  /** The server ended a subscription (`left`, or a join refused `unsubscribed`): not rejoined. */
  function endByServer(sub: Subscription<unknown>, reason: string): void {
    if (!sub.end()) return;
    if (subs.get(sub.channel) === sub) subs.delete(sub.channel);
    joined.delete(sub);
    sub.handlers.onLeft?.({ channel: sub.channel, reason });
  }

  /** Closes the connection and every subscription, for good. */
  function close(): void {
    closed = true;
    if (retryTimer) clearTimeout(retryTimer);
    if (refreshTimer) clearTimeout(refreshTimer);
    for (const timer of leaveTimers) clearTimeout(timer);
    leaveTimers.clear();
    subs.clear();
    joined.clear();
    socket.close();
    options.onStateChange?.('closed');
  }

  /** One reconnect attempt after the backoff; a pending one wins (one schedule, one timer). */
  function reconnectLater(floorMs?: number): void {
    if (closed || retryTimer) return;
    const delay = backoffDelay(attempts, options.backoff, floorMs);
    attempts += 1;
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      if (!closed && !socket.connected) socket.connect();
    }, delay);
  }

  /** With getToken and an expiring token, send a fresh one before the old one runs out. */
  function scheduleRefresh(): void {
    if (refreshTimer) clearTimeout(refreshTimer);
    refreshTimer = undefined;
    if (!options.getToken || currentToken === undefined) return;
    const exp = expiryOf(currentToken);
    if (exp === undefined || closed) return;
    // Refresh when 80% of the token's remaining life has passed.
    const ms = Math.max(1000, (exp * 1000 - Date.now()) * 0.8);
    refreshTimer = setTimeout(
      () => {
        void fetchToken().then(async (fresh) => {
          const ack = (await socket
            .timeout(10_000)
            .emitWithAck('refresh', { token: fresh })
            .catch(() => undefined)) as { ok: boolean } | undefined;
          if (ack?.ok) {
            currentToken = fresh;
            scheduleRefresh();
          }
        });
      },
      Math.min(ms, 2 ** 31 - 1),
    );
  }

  return {
    socket,
    subscribe<T>(channel: string, handlers: SubscriptionHandlers<T> = {}): Subscription<T> {
      const existing = subs.get(channel);
      if (existing) return existing as Subscription<T>;
      const sub = new Subscription<T>(channel, handlers, (s) => {
        if (subs.get(s.channel) === s) subs.delete(s.channel);
        joined.delete(s as Subscription<unknown>);
        // Not connected: the server holds nothing for it, and the next connection will not join.
        leave(s.channel);
      });
      subs.set(channel, sub as Subscription<unknown>);
      if (socket.connected) join(sub as Subscription<unknown>);
      return sub;
    },
    close() {
      if (!closed) close();
    },
  };
}

/** The `exp` claim of a JWT, read without verifying (only to time the refresh). */
function expiryOf(token: string): number | undefined {
  try {
    const part = token.split('.')[1];
    if (!part) return undefined;
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/'));
    const exp = (JSON.parse(json) as { exp?: unknown }).exp;
    return typeof exp === 'number' ? exp : undefined;
  } catch {
    return undefined;
  }
}
