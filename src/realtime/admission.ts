import type { CapacityCode } from '../errors.js';
import { RateLimiter } from '../limits/token-bucket.js';

export type { CapacityCode };

/** The limits admission enforces (the `limits` settings of the same names). */
export interface AdmissionLimits {
  /** Connections one node holds at most, both transports, counting handshakes in progress. */
  maxConnections: number;
  /** Connections of one user (`userId`, the token's `sub`) on this node at most, both transports. */
  maxConnectionsPerUser: number;
  /** New connections admitted per second, and as a burst, both transports. */
  connectRatePerSecond: number;
}

/** Why a connection was refused, and when to try again if that is known. */
export interface CapacityRefusal {
  code: CapacityCode;
  retryAfterMs?: number;
}

/**
 * The wait a full node asks for: a slot frees when some client leaves, which nothing predicts, so
 * this is only a floor the client's own growing, jittered backoff starts from.
 */
export const NODE_FULL_RETRY_MS = 1000;

// One bucket for the whole node.
const RATE_KEY = 'connect';

/**
 * One connection's hold on the node, from its node check (a handshake starts) until it is
 * released: refused, gone during the handshake, or closed once connected. The transport that took
 * it releases it on every way out; only the first release counts, so later ones are harmless.
 */
export interface AdmissionTicket {
  /** Whether it was released (its slot and its user's count are given back). */
  readonly released: boolean;
  /**
   * After authentication: the user's connections on this node. A refusal releases the ticket; an
   * unknown user (no `userId`) is not counted per user. Nothing is done once released.
   */
  admitUser(user: string | undefined): CapacityRefusal | undefined;
  /** Gives the slot, and the user's count, back. Idempotent. */
  release(): void;
}

/**
 * Connection admission for every transport: how many connections this node takes, how fast, and
 * how many per user.
 *
 * A transport asks {@link admitNode} when a handshake starts, before any token is verified (cheap:
 * node full, then the connect rate), and gets a ticket or a refusal. The ticket counts against
 * the node at once, so handshakes in progress on either transport see each other; after
 * authentication {@link AdmissionTicket.admitUser} counts it for its user. Socket.IO sockets
 * (src/realtime/socket-server.ts) and Phoenix connections (src/realtime/phoenix-endpoint.ts) hold
 * tickets of the same admission: one node count, one per-user count, one connect-rate bucket.
 * How a refusal reaches the client is the transport's business.
 */
export class Admission {
  /** Tickets not released: connections and handshakes in progress, both transports. */
  private count = 0;
  private readonly users = new Map<string, number>();
  private readonly rate: RateLimiter;

  /** @param onRefused told of every capacity refusal with the connection's id (logs). */
  constructor(
    private readonly limits: AdmissionLimits,
    private readonly onRefused: (code: CapacityCode, conn: string) => void = () => {},
    now: () => number = Date.now,
  ) {
    this.rate = new RateLimiter(limits.connectRatePerSecond, limits.connectRatePerSecond, now);
  }

  /** Connections held, handshakes in progress included. */
  get held(): number {
    return this.count;
  }

  /** A handshake starts: node full, then the connect rate. A refusal takes nothing. */
  admitNode(conn: string): AdmissionTicket | CapacityRefusal {
    if (this.count >= this.limits.maxConnections)
      return this.refuse(conn, { code: 'node_full', retryAfterMs: NODE_FULL_RETRY_MS });
    const waitS = this.rate.take(RATE_KEY);
    if (waitS > 0)
      return this.refuse(conn, { code: 'connect_rate_limited', retryAfterMs: waitS * 1000 });
    this.count += 1;
    return this.ticket(conn);
  }

  private ticket(conn: string): AdmissionTicket {
    return new Ticket(this, conn);
  }

  /** The per-user check of a ticket: counts `user`, or refuses (the caller releases). */
  countUser(conn: string, user: string): CapacityRefusal | undefined {
    const held = this.users.get(user) ?? 0;
    if (held >= this.limits.maxConnectionsPerUser)
      return this.refuse(conn, { code: 'too_many_user_connections' });
    this.users.set(user, held + 1);
    return undefined;
  }

  /** A ticket's release: its slot, and its user's count when it held one. */
  giveBack(user: string | undefined): void {
    this.count -= 1;
    if (user === undefined) return;
    const left = (this.users.get(user) ?? 1) - 1;
    if (left > 0) this.users.set(user, left);
    else this.users.delete(user);
  }

  private refuse(conn: string, refusal: CapacityRefusal): CapacityRefusal {
    this.onRefused(refusal.code, conn);
    return refusal;
  }
}

/**
 * A class, not an object of closures: every connection holds one for its life (idle memory per
 * connection is a benchmarked figure, BENCHMARKS.md).
 */
class Ticket implements AdmissionTicket {
  released = false;
  /** The user whose count it holds, once the per-user check passed. */
  private user: string | undefined;

  constructor(
    private readonly admission: Admission,
    private readonly conn: string,
  ) {}

  admitUser(who: string | undefined): CapacityRefusal | undefined {
    if (this.released || who === undefined || this.user !== undefined) return undefined;
    const refusal = this.admission.countUser(this.conn, who);
    // Counted now, not once connected: handshakes of one user side by side see each other.
    if (refusal) this.release();
    else this.user = who;
    return refusal;
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.admission.giveBack(this.user);
  }
}

/** Whether an admission answer is a refusal. */
export function isRefusal(answer: AdmissionTicket | CapacityRefusal): answer is CapacityRefusal {
  return 'code' in answer;
}

/** What a client is told of a capacity refusal (`connect_error`'s `data`): the code, and the wait if known. */
export function refusalData(refusal: CapacityRefusal): CapacityRefusal {
  return refusal.retryAfterMs === undefined
    ? { code: refusal.code }
    : { code: refusal.code, retryAfterMs: refusal.retryAfterMs };
}
