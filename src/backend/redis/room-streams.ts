import type { Logger } from 'pino';
import type { HistoryPage } from '../../delivery/bus.js';
import type { ChannelMessage } from '../../delivery/message.js';
import { channelOfRoom } from '../../delivery/names.js';
import { formatOffset, parseOffset, type ParsedOffset } from '../../delivery/offset.js';
import { withTimeout } from './timeout.js';

/** What the tracker reads and does; the Redis backend gives it the bus and the adapter. */
export interface RoomStreamsDeps {
  /** History after `since` (RedisBus.history). */
  history(channel: string, options: { since: string; limit: number }): Promise<HistoryPage>;
  /** The channel's current position, starting its history if none (RedisBus.position). */
  position(channel: string): Promise<string | undefined>;
  /** A round trip on the room's subscriber connection (every message published before is in). */
  roundTrip(room: string): Promise<void>;
  /** Hands a message from history to the room's local sockets, as a live one would be. */
  deliver(room: string, message: ChannelMessage): void;
  /** Closes the transports of the room's local sockets: they reconnect and rejoin with `since`. */
  rejoin(room: string): number;
  /** Whether the channel keeps history (no offsets, nothing to track, otherwise). */
  tracked(channel: string): boolean;
  log: Logger;
  /** Bound on one fill (history reads); past it the room's sockets are sent to rejoin. */
  fillTimeoutMs: number;
}

/** A live message held while its room is being filled from history. */
interface Held {
  offset: ParsedOffset;
  pass: () => void;
}

interface RoomState {
  /** The last offset handed to the room (or proven to be its position). */
  last: ParsedOffset | undefined;
  /** How many subscriber interruptions this node had seen when `last` was taken. */
  seenAt: number;
  /** Set while a fill runs: live messages wait here, in arrival order. */
  held: Held[] | undefined;
  filling: Promise<void> | undefined;
  /** Bumped by every fill that could not fill (history lost or unreadable). */
  failures: number;
  baseline: boolean;
}

/** Messages read per history page while filling. */
const FILL_PAGE = 500;
/** Pause before reading history again after a failed read, within a fill's bound. */
const FILL_RETRY_MS = 100;
/** Fills at once when every room is checked after a reconnect. */
const RECHECK_CONCURRENCY = 16;

/**
 * Live delivery without silent gaps. Sharded (and classic) pub/sub keeps nothing: a message
 * published while this node's subscription is down (its subscriber connection dropped, or its
 * shard failed over and the subscription is not on the new master yet) never arrives. So the
 * node keeps, per local room, the last offset it handed to the room's sockets, and:
 *
 * - a live message that skips offsets (the next after n is n+2 or more) is held, the missing ones
 *   are read from history and handed over first, then the held ones: every socket sees the
 *   channel's messages in offset order, none missing, none twice;
 * - after the subscriber side is back (reconnect, failover, slot migration), every tracked room is
 *   checked against history the same way, so a gap is filled even if no message follows it;
 * - when history cannot fill a gap after an interruption of the subscription (history was trimmed
 *   past it, or cannot be read in time), the room's sockets are disconnected at the transport
 *   level: clients reconnect and rejoin with `since`, and get `recovered: true` (history holds it
 *   after all) or `false`. History lost whole (Redis restarted empty, or expired) is no gap: what
 *   was published since then is in the new history, and filled from its start.
 *
 * Offsets that skip on a subscription that was never interrupted since the room's last message
 * cannot be messages this node missed: they are filled if history has them, else passed on with
 * a warning, as before (someone changed the channel's position in Redis).
 * A message that repeats an offset already handed over is dropped (a fill and a late live copy).
 * Channels with history off carry no offsets and are not tracked.
 */
export class RoomStreams {
  private readonly rooms = new Map<string, RoomState>();
  /** Subscriber interruptions so far (a connection dropped, a shard failed over, a slot moved). */
  private interruptions = 0;

  constructor(private readonly deps: RoomStreamsDeps) {}

  /**
   * A live message for a room: handed over (`pass`), held while the room is filled from history,
   * or dropped as a repeat. `offset` is the message's offset (undefined: not tracked, passed).
   */
  incoming(room: string, offset: ParsedOffset | undefined, pass: () => void): void {
    if (!offset) return pass();
    const state = this.state(room);
    if (state.held) {
      state.held.push({ offset, pass });
      return;
    }
    const verdict = this.accept(state, offset);
    if (verdict === 'pass') return pass();
    if (verdict === 'drop') return;
    // A gap before this message: fill it, then hand this one over.
    const from = state.last!.epoch === offset.epoch ? state.last! : { epoch: offset.epoch, n: 0 };
    this.startFill(room, state, from, [{ offset, pass }]);
  }

  /**
   * The room is subscribed on this node: once, take its position as the baseline (after a round
   * trip on the subscriber connection, so no message up to it is still on its way), so a gap
   * before its first live message is seen too.
   */
  track(room: string): void {
    const channel = channelOfRoom(room);
    if (channel === undefined || !this.deps.tracked(channel)) return;
    const state = this.state(room);
    if (state.baseline || state.last) return;
    state.baseline = true;
    void (async () => {
      try {
        const position = parseOffset(await this.deps.position(channel));
        await this.deps.roundTrip(room);
        if (position && !state.last && !state.held && this.rooms.get(room) === state) {
          state.last = position;
          state.seenAt = this.interruptions;
        }
      } catch {
        // Redis away: tried again at the next subscription or reconnect.
        state.baseline = false;
      }
    })();
  }

  /**
   * The subscription was interrupted (a subscriber connection dropped, a slot moved): messages
   * published from now until every room is subscribed again may never arrive.
   */
  interrupted(): void {
    this.interruptions += 1;
  }

  /** The room has no local member left. */
  forget(room: string): void {
    this.rooms.delete(room);
  }

  /**
   * After the subscriber side came back with every room subscribed again: checks each of these
   * rooms (every tracked one by default) against history and fills what was published meanwhile,
   * a few rooms at a time.
   */
  async recheck(rooms: Iterable<string> = this.rooms.keys()): Promise<void> {
    const queue = [...rooms];
    const worker = async (): Promise<void> => {
      for (let room = queue.shift(); room !== undefined; room = queue.shift()) {
        const state = this.rooms.get(room);
        if (!state) continue;
        if (!state.last) {
          state.baseline = false;
          this.track(room);
          continue;
        }
        if (state.held) continue;
        this.startFill(room, state, state.last, []);
        await state.filling;
      }
    };
    await Promise.all(Array.from({ length: RECHECK_CONCURRENCY }, worker));
  }

  /**
   * Resolves once the room has no fill running (at once, mostly); rejects if a fill that was
   * running when called could not fill its gap: messages may be missing from what reached the
   * room's listeners (a recovering join then answers `recovered: false`).
   */
  async idle(room: string): Promise<void> {
    const state = this.rooms.get(room);
    if (!state?.filling) return;
    const failures = state.failures;
    while (state.filling !== undefined) await state.filling;
    if (state.failures !== failures) throw new Error('a gap in the room could not be filled');
  }

  /** Rooms tracked (for tests and metrics). */
  get size(): number {
    return this.rooms.size;
  }

  private state(room: string): RoomState {
    let state = this.rooms.get(room);
    if (!state) {
      state = {
        last: undefined,
        seenAt: this.interruptions,
        held: undefined,
        filling: undefined,
        failures: 0,
        baseline: false,
      };
      this.rooms.set(room, state);
    }
    return state;
  }

  /** Whether a message follows the last one handed over (and records it), repeats one, or skips. */
  private accept(state: RoomState, offset: ParsedOffset): 'pass' | 'drop' | 'gap' {
    const last = state.last;
    if (!last) {
      state.last = offset;
      state.seenAt = this.interruptions;
      return 'pass';
    }
    if (offset.epoch === last.epoch) {
      if (offset.n <= last.n) return 'drop';
      if (offset.n > last.n + 1) return 'gap';
    } else if (offset.n !== 1) {
      // Another history (the channel's expired or was lost): only its first message follows.
      return 'gap';
    }
    state.last = offset;
    state.seenAt = this.interruptions;
    return 'pass';
  }

  private startFill(room: string, state: RoomState, from: ParsedOffset, held: Held[]): void {
    state.held = held;
    // Taken now: an interruption while filling is the next fill's business.
    const interrupted = state.seenAt !== this.interruptions;
    const run = this.fill(room, state, from).then(
      () => true,
      (err: unknown) => {
        this.deps.log.debug({ err, room }, 'gap fill failed');
        return false;
      },
    );
    state.filling = run.then((filled) => {
      if (!filled && !interrupted) {
        // Offsets skipped on a subscription that never dropped: nothing this node missed.
        state.last = undefined;
        this.deps.log.warn(
          { channel: channelOfRoom(room), from: formatOffset(from.epoch, from.n) },
          'channel offsets skipped without a subscriber interruption; not in history',
        );
      } else if (!filled) {
        state.failures += 1;
        // The next message starts a new baseline; the sockets rejoin with their own `since`.
        state.last = undefined;
        const sockets = this.deps.rejoin(room);
        this.deps.log.warn(
          { channel: channelOfRoom(room), sockets },
          'live messages missed and not in history: sockets sent to rejoin with since',
        );
      }
      const waiting = state.held ?? [];
      state.held = undefined;
      state.filling = undefined;
      for (const h of waiting) this.incoming(room, h.offset, h.pass);
    });
  }

  /** Hands over every message history holds after `from`, in order; throws if it cannot. */
  private async fill(room: string, state: RoomState, from: ParsedOffset): Promise<void> {
    const channel = channelOfRoom(room)!;
    const deadline = Date.now() + this.deps.fillTimeoutMs;
    let since = from;
    let switched = false;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('gap fill timed out');
      let page: HistoryPage;
      try {
        page = await withTimeout(
          this.deps.history(channel, {
            since: formatOffset(since.epoch, since.n),
            limit: FILL_PAGE,
          }),
          left,
        );
      } catch (err) {
        // Redis busy or still reconnecting (the publisher can be back after the subscriber):
        // read again, within the fill's bound.
        if (Date.now() + FILL_RETRY_MS >= deadline) throw err;
        await new Promise((r) => setTimeout(r, FILL_RETRY_MS));
        continue;
      }
      if (!page.complete) {
        const top = parseOffset(page.top);
        // No history at all: lost whole (or expired) and nothing published since.
        if (!top) return;
        // Another history than the one the gap began in: all of it is newer than the gap.
        if (top.epoch !== since.epoch && !switched) {
          since = { epoch: top.epoch, n: 0 };
          switched = true;
          continue;
        }
        throw new Error('history no longer holds the gap');
      }
      // Messages that also arrived live meanwhile (held) were not missed: not counted.
      const firstHeld = state.held?.[0]?.offset;
      let filled = 0;
      for (const message of page.messages) {
        const offset = parseOffset(message.offset);
        if (!offset) continue;
        if (this.accept(state, offset) === 'drop') continue;
        state.last = offset;
        this.deps.deliver(room, message);
        if (!firstHeld || firstHeld.epoch !== offset.epoch || offset.n < firstHeld.n) filled += 1;
      }
      if (filled > 0)
        this.deps.log.info(
          { channel, filled, from: formatOffset(from.epoch, from.n) },
          'live messages missed: filled from history',
        );
      const lastRead = parseOffset(page.messages.at(-1)?.offset);
      if (page.messages.length < FILL_PAGE || !lastRead) return;
      since = lastRead;
    }
  }
}
