import type { Socket } from 'socket.io';
import { RateLimiter } from '../limits/token-bucket.js';

import type { CapacityCode } from '../errors.js';

export type { CapacityCode };

/** The limits admission enforces (the `limits` settings of the same names). */
export interface AdmissionLimits {
  /** Sockets one node holds at most, counting handshakes in progress. */
  maxConnections: number;
  /** Sockets of one user (`userId`, the token's `sub`) on this node at most. */
  maxConnectionsPerUser: number;
  /** New connections admitted per second, and as a burst. */
  connectRatePerSecond: number;
}

type Next = (err?: Error) => void;

/**
 * The wait a full node asks for: a slot frees when some client leaves, which nothing predicts, so
 * this is only a floor the client's own growing, jittered backoff starts from.
 */
export const NODE_FULL_RETRY_MS = 1000;

// One bucket for the whole node.
const RATE_KEY = 'connect';

/** A socket between the node check and its end (refused, gone, or disconnected). */
interface Ticket {
  /** In `sockets` from the `connection` event on; before that, counted as a handshake. */
  connected: boolean;
  /** The user whose count it holds (set once the per-user check passed). */
  user: string | undefined;
  onConnClose: () => void;
}

/**
 * Connection admission: how many sockets this node takes, how fast, and how many per user.
 *
 * Two Socket.IO middlewares around authentication: {@link admitNode} first (node full, admission
 * rate: cheap, before any token is verified), {@link admitUser} last (the user is known only after
 * authentication). A refusal is a `connect_error` with message `"unavailable"` and
 * `data: { code, retryAfterMs? }`.
 *
 * Only admitted sockets are counted, each exactly once: a socket holds a ticket from the node
 * check until it is refused ({@link refused} for a middleware in between), its connection closes
 * during the handshake, or it disconnects. Nothing is kept in `socket.data`.
 */
export class Admission {
  /** Sockets past the node check that are not yet in the namespace's `sockets`. */
  private handshakes = 0;
  private readonly users = new Map<string, number>();
  private readonly tickets = new WeakMap<Socket, Ticket>();
  private readonly rate: RateLimiter;

  /**
   * @param connectedSockets sockets connected to the namespace now (`io.of('/').sockets.size`).
   * @param onRefused told of every capacity refusal (logs, metrics).
   */
  constructor(
    private readonly limits: AdmissionLimits,
    private readonly connectedSockets: () => number,
    private readonly onRefused: (code: CapacityCode, socket: Socket) => void = () => {},
    now: () => number = Date.now,
  ) {
    this.rate = new RateLimiter(limits.connectRatePerSecond, limits.connectRatePerSecond, now);
  }

  /** Middleware, before authentication: node full, then the admission rate. */
  readonly admitNode = (socket: Socket, next: Next): void => {
    // Gone while Socket.IO set it up: it would be dropped anyway, and its close already fired.
    if (socket.conn.readyState !== 'open') return next(new Error('closed'));
    if (this.connectedSockets() + this.handshakes >= this.limits.maxConnections)
      return this.refuse(socket, next, 'node_full', NODE_FULL_RETRY_MS);
    const waitS = this.rate.take(RATE_KEY);
    if (waitS > 0) return this.refuse(socket, next, 'connect_rate_limited', waitS * 1000);
    const ticket: Ticket = {
      connected: false,
      user: undefined,
      onConnClose: () => this.release(socket),
    };
    this.handshakes += 1;
    this.tickets.set(socket, ticket);
    // A client that goes away mid-handshake gets neither `connection` nor `disconnect`.
    socket.conn.once('close', ticket.onConnClose);
    next();
  };

  /** Middleware, after authentication (reads `socket.data.userId`): the per-user limit. */
  readonly admitUser = (socket: Socket, next: Next): void => {
    const ticket = this.tickets.get(socket);
    const user = (socket.data as { userId?: unknown } | undefined)?.userId;
    // No ticket: released while authenticating (its connection closed); Socket.IO drops it.
    if (!ticket || typeof user !== 'string') return next();
    const held = this.users.get(user) ?? 0;
    if (held >= this.limits.maxConnectionsPerUser) {
      this.release(socket);
      return this.refuse(socket, next, 'too_many_user_connections');
    }
    // Counted now, not at `connection`: handshakes of one user running side by side see each other.
    this.users.set(user, held + 1);
    ticket.user = user;
    next();
  };

  /** A middleware between the two refused the socket (authentication). */
  refused(socket: Socket): void {
    this.release(socket);
  }

  /** The socket connected (call first thing in `connection`): held until it disconnects. */
  connected(socket: Socket): void {
    const ticket = this.tickets.get(socket);
    if (!ticket) return;
    ticket.connected = true;
    this.handshakes -= 1;
    // From here `disconnect` always comes, also when the connection closes.
    socket.conn.off('close', ticket.onConnClose);
    socket.once('disconnect', () => this.release(socket));
  }

  private refuse(socket: Socket, next: Next, code: CapacityCode, retryAfterMs?: number): void {
    this.onRefused(code, socket);
    next(capacityRefusal(code, retryAfterMs));
  }

  private release(socket: Socket): void {
    const ticket = this.tickets.get(socket);
    if (!ticket) return;
    this.tickets.delete(socket);
    socket.conn.off('close', ticket.onConnClose);
    if (!ticket.connected) this.handshakes -= 1;
    if (ticket.user !== undefined) {
      const left = (this.users.get(ticket.user) ?? 1) - 1;
      if (left > 0) this.users.set(ticket.user, left);
      else this.users.delete(ticket.user);
    }
  }
}

/** The `connect_error` of a capacity refusal. */
function capacityRefusal(code: CapacityCode, retryAfterMs?: number): Error {
  const err = new Error('unavailable') as Error & {
    data: { code: CapacityCode; retryAfterMs?: number };
  };
  err.data = retryAfterMs === undefined ? { code } : { code, retryAfterMs };
  return err;
}
