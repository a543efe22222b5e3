import type { Socket } from 'socket.io';
import type { CapacityCode } from '../errors.js';
import { RateLimiter } from '../limits/token-bucket.js';
import { NODE_FULL_RETRY_MS, type AdmissionLimits } from './admission.js';

/** A capacity refusal: the same codes as a Socket.IO `connect_error` "unavailable". */
export interface CapacityRefusal {
  code: CapacityCode;
  retryAfterMs?: number;
}

/** A Phoenix connection from its node check until it is released. */
export interface PhoenixTicket {
  /** Counted as a handshake until it connects. */
  connected: boolean;
  /** The user whose count it holds, once the per-user check passed. */
  user: string | undefined;
  released: boolean;
}

type Next = (err?: Error) => void;

const RATE_KEY = 'connect';

/**
 * The node's connection limits (`limits.maxConnections`, `maxConnectionsPerUser`,
 * `connectRatePerSecond`) across both transports: Phoenix connections count against them, and
 * Socket.IO sockets count against them for Phoenix connections.
 *
 * Socket.IO sockets keep their own admission (src/realtime/admission.ts); this adds, for them, two
 * middlewares around it: {@link socketIoNode} (before it: the node's total with Phoenix
 * connections, and the node's connection rate shared with Phoenix) and {@link socketIoUser} (after
 * it: the user's Socket.IO sockets plus Phoenix connections). Phoenix upgrades are checked in the
 * same order: node and rate before the token is verified ({@link admitNode}), the user after
 * ({@link admitUser}).
 *
 * Only handshakes of the connection's own transport are seen in progress: the other transport's
 * count is of connections already made.
 */
export class PhoenixAdmission {
  private handshakes = 0;
  private connections = 0;
  private readonly users = new Map<string, number>();
  private readonly socketIoUsers = new Map<string, number>();
  /** One bucket for the node's new connections, whichever the transport. */
  private readonly rate: RateLimiter;

  constructor(
    private readonly limits: AdmissionLimits,
    /** Socket.IO sockets connected to this node now. */
    private readonly socketIoSockets: () => number,
    /** Told of every capacity refusal (logs). */
    private readonly onRefused: (code: CapacityCode, conn: string) => void = () => {},
    now: () => number = Date.now,
  ) {
    this.rate = new RateLimiter(limits.connectRatePerSecond, limits.connectRatePerSecond, now);
  }

  /** Phoenix connections held (handshakes in progress included). */
  get phoenix(): number {
    return this.connections + this.handshakes;
  }

  /** A Phoenix upgrade, before its token is verified: node full, then the connection rate. */
  admitNode(conn: string): PhoenixTicket | CapacityRefusal {
    if (this.socketIoSockets() + this.phoenix >= this.limits.maxConnections)
      return this.refuse(conn, { code: 'node_full', retryAfterMs: NODE_FULL_RETRY_MS });
    const waitS = this.rate.take(RATE_KEY);
    if (waitS > 0)
      return this.refuse(conn, { code: 'connect_rate_limited', retryAfterMs: waitS * 1000 });
    this.handshakes += 1;
    return { connected: false, user: undefined, released: false };
  }

  /** After the token is verified: the user's connections on this node, both transports. */
  admitUser(ticket: PhoenixTicket, user: string | undefined, conn: string): CapacityRefusal | void {
    if (ticket.released || user === undefined) return;
    const held = (this.users.get(user) ?? 0) + (this.socketIoUsers.get(user) ?? 0);
    if (held >= this.limits.maxConnectionsPerUser) {
      this.release(ticket);
      return this.refuse(conn, { code: 'too_many_user_connections' });
    }
    this.users.set(user, (this.users.get(user) ?? 0) + 1);
    ticket.user = user;
  }

  /** The upgrade completed: counted as a connection until released. */
  connected(ticket: PhoenixTicket): void {
    if (ticket.released || ticket.connected) return;
    ticket.connected = true;
    this.handshakes -= 1;
    this.connections += 1;
  }

  /** Refused, gone during the handshake, or closed: its counts go. Idempotent. */
  release(ticket: PhoenixTicket): void {
    if (ticket.released) return;
    ticket.released = true;
    if (ticket.connected) this.connections -= 1;
    else this.handshakes -= 1;
    if (ticket.user !== undefined) decrement(this.users, ticket.user);
  }

  /**
   * Socket.IO middleware, before the Socket.IO admission: the node is full counting Phoenix
   * connections, or the node's connection rate (shared with Phoenix) is spent.
   */
  readonly socketIoNode = (socket: Socket, next: Next): void => {
    // Gone already: the Socket.IO admission drops it.
    if (socket.conn.readyState !== 'open') return next();
    if (this.phoenix > 0 && this.socketIoSockets() + this.phoenix >= this.limits.maxConnections)
      return next(
        capacityError(
          this.refuse(socket.id, { code: 'node_full', retryAfterMs: NODE_FULL_RETRY_MS }),
        ),
      );
    const waitS = this.rate.take(RATE_KEY);
    if (waitS > 0)
      return next(
        capacityError(
          this.refuse(socket.id, { code: 'connect_rate_limited', retryAfterMs: waitS * 1000 }),
        ),
      );
    next();
  };

  /** Socket.IO middleware, after the Socket.IO admission: the user's Phoenix connections count. */
  readonly socketIoUser = (socket: Socket, next: Next): void => {
    const user = (socket.data as { userId?: unknown } | undefined)?.userId;
    if (typeof user !== 'string') return next();
    const phoenix = this.users.get(user) ?? 0;
    if (
      phoenix > 0 &&
      phoenix + (this.socketIoUsers.get(user) ?? 0) >= this.limits.maxConnectionsPerUser
    )
      return next(capacityError(this.refuse(socket.id, { code: 'too_many_user_connections' })));
    next();
  };

  /** Socket.IO `connection` listener: keeps the count of each user's Socket.IO sockets. */
  readonly socketIoConnected = (socket: Socket): void => {
    const user = (socket.data as { userId?: unknown } | undefined)?.userId;
    if (typeof user !== 'string') return;
    this.socketIoUsers.set(user, (this.socketIoUsers.get(user) ?? 0) + 1);
    socket.once('disconnect', () => decrement(this.socketIoUsers, user));
  };

  private refuse(conn: string, refusal: CapacityRefusal): CapacityRefusal {
    this.onRefused(refusal.code, conn);
    return refusal;
  }
}

/** Whether an admission answer is a refusal. */
export function isRefusal(value: PhoenixTicket | CapacityRefusal): value is CapacityRefusal {
  return 'code' in value;
}

/** The `connect_error` "unavailable" a Socket.IO client gets for a capacity refusal. */
function capacityError(refusal: CapacityRefusal): Error {
  const err = new Error('unavailable') as Error & { data: CapacityRefusal };
  err.data =
    refusal.retryAfterMs === undefined
      ? { code: refusal.code }
      : { code: refusal.code, retryAfterMs: refusal.retryAfterMs };
  return err;
}

function decrement(counts: Map<string, number>, key: string): void {
  const left = (counts.get(key) ?? 1) - 1;
  if (left > 0) counts.set(key, left);
  else counts.delete(key);
}
