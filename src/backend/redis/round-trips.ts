import type { Redis } from 'ioredis';

/**
 * Round trips on subscriber connections, one PING per connection per turn of the event loop,
 * shared by every caller of that turn.
 *
 * A round trip proves that every message Redis sent this node on the connection before the PING
 * has been received (replies come in order). Each join of a new room needs one, and so does each
 * join with `since`: in a connect burst they came one PING, one write and one reply each. A PING
 * sent after the callers asked proves the same for all of them, so the callers of one turn wait
 * for one PING, sent once the turn's I/O callbacks have run (`setImmediate`); a caller that comes
 * after it was sent waits for the next one.
 */
export class RoundTrips {
  private readonly next = new Map<Redis, Promise<void>>();

  /**
   * Resolves once a PING sent on `connection` after this call is answered; rejects as that PING
   * does. The caller picks the connection (one that is up, or for a Redis Cluster one that is
   * connecting, where the PING waits until it is up).
   */
  after(connection: Redis): Promise<void> {
    let trip = this.next.get(connection);
    if (!trip) {
      trip = new Promise<void>((resolve, reject) => {
        setImmediate(() => {
          this.next.delete(connection);
          connection.ping().then(() => resolve(), reject);
        });
      });
      this.next.set(connection, trip);
    }
    return trip;
  }
}
