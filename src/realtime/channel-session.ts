import type { Logger } from 'pino';
import type { DefaultAuth, Hooks, SocketContext } from '../auth/hooks.js';
import type { Config } from '../config/schema.js';
import type { Bus } from '../delivery/bus.js';
import type { HistoryPolicy } from '../delivery/history-policy.js';
import type { ChannelMessage } from '../delivery/message.js';
import { channelOfRoom, isChannelName, roomOf } from '../delivery/names.js';
import { parseOffset } from '../delivery/offset.js';
import type { RateLimiter } from '../limits/token-bucket.js';
import type { Expiring, ExpirySchedule, ScheduledExpiry } from './expiry-schedule.js';
import { deadline, LateAnswer, type Within } from './join-deadline.js';
import type { RoomTaps } from './room-taps.js';
import {
  joinSchema,
  leaveSchema,
  refreshSchema,
  type JoinError,
  type LeftReason,
} from './schemas.js';
import { authenticateSocket, sessionIdentity } from './socket-auth.js';
import type { SessionTransport } from './session-transport.js';
import { SmallMap } from './small-map.js';
import type { ControlledSession, UserSessions } from './user-sessions.js';

/**
 * The join steps that may run twice (join-deadline.ts: after a stall of the node): the
 * subscription and the reads. Not `bus.settle`: a second run would not see a gap the first
 * failed to fill.
 */
const REPEATABLE = { repeatable: true } as const;

/** What a channel session needs from the rest of the server. */
export interface SessionDeps {
  config: Config;
  log: Logger;
  hooks: Hooks;
  defaults: DefaultAuth;
  bus: Bus;
  history: HistoryPolicy;
  /** Live-message listeners for connections catching up (join with `since`). */
  taps: RoomTaps;
  /** Resolves once this node receives the room's messages (Redis subscription active). */
  ensureSubscribed(room: string): Promise<void>;
  /** join/leave/refresh per connection (keyed by connection id). */
  eventLimiter: RateLimiter;
  /** This node's sessions by user: the control API (disconnect, unsubscribe) acts on them. */
  users: UserSessions;
  /** Token expiries of the node's sessions, on one timer. */
  expiries: ExpirySchedule;
}

/** Join answer: ok with the channel's position, or a refusal code. */
export type JoinAnswer =
  | { ok: true; channel: string; offset?: string; recovered?: boolean; missed?: number }
  | { ok: false; error: JoinError };

/** Leave and refresh answers. */
export type Answer = { ok: true } | { ok: false; error: string };

/**
 * One channel of the connection, from its `join` until it is left (a `leave`, a `refresh` that
 * no longer allows it) or its join is refused. Kept by the session, never in the transport's
 * identity (which must stay plain JSON for cross-node `fetchSockets`).
 */
interface Membership {
  channel: string;
  /** The join's `params`, for an authorizeJoin hook: a refresh checks the channel with them. */
  params: unknown;
  /** The join's work, while it has not answered. */
  attempt?: Promise<JoinAnswer>;
  /** Set in the same step as the ok answer is sent: from then on a revocation says `left`. */
  answered: boolean;
  /** Called off before it answered (a leave, a refresh, an unsubscribe): the join answers this. */
  cancelled?: JoinError;
}

/**
 * The channels of one connection, whatever carries it: `join`, `leave`, `refresh` and token
 * expiry, each answered (a bad payload gets an error answer, never silence or a crash).
 *
 * A `leave` wins over a join of the same channel that has not answered yet: that join never puts
 * the connection in the room (nor replays history) and answers `invalid_request`. Refreshes apply
 * one after the other, in the order sent; after each, every channel held or being joined is
 * checked again like a join (hooks included, with the join's params): a joined one no longer
 * allowed is left and the client gets `left` `{ channel, reason: "forbidden" }` before the
 * refresh's answer; a pending one answers `forbidden`. A server-side unsubscribe (the control API)
 * does the same for one channel with the reason `unsubscribed`, and a server-side disconnect ends
 * the connection telling the client not to come back on its own.
 *
 * Every Redis-dependent step of a join (subscription, position, history, settle) shares one
 * deadline of `redis.commandTimeoutMs`, counted once the join is authorized: with Redis down or
 * paused a join still answers in time (docs/protocol.md, "Joining with since").
 */
export class ChannelSession implements ControlledSession, Expiring {
  /** By room: joins in progress and channels joined through `join` (mostly one: no `Map`). */
  private readonly memberships = new SmallMap<Membership>();
  private expiry: ScheduledExpiry | undefined;
  /** The last refresh, while one may still run (none yet: nothing held per idle connection). */
  private refreshing: Promise<unknown> | undefined;
  /** Ended: late work must not act, even if its transport serves a new session since. */
  private ended = false;

  constructor(
    private readonly transport: SessionTransport,
    private readonly deps: SessionDeps,
  ) {
    this.armExpiry();
    deps.users.add(this);
  }

  /** Ended, or its connection closed: late work must not act on it. */
  private get gone(): boolean {
    return this.ended || this.transport.closed;
  }

  /** The connection's user: fixed for its life (a refresh must keep it). */
  get userId(): string | undefined {
    return this.transport.identity.userId;
  }

  /** `join { channel, since?, params? }`. */
  async join(payload: unknown): Promise<JoinAnswer | LateAnswer> {
    const parsed = joinSchema.safeParse(payload);
    if (!parsed.success) return { ok: false, error: 'invalid_request' };
    const { channel, since, params } = parsed.data;
    if (!isChannelName(channel)) return { ok: false, error: 'invalid_channel' };
    if (this.rateLimited()) return { ok: false, error: 'rate_limited' };
    const room = roomOf(channel);
    const current = this.memberships.get(room);
    // The same channel's join still in progress: answer as it will, and never replay twice.
    if (current?.attempt && !current.answered) {
      const a = await current.attempt;
      return this.finalAnswer(current, room, a.ok ? { ok: true, channel } : a);
    }
    if (this.transport.inRoom(room)) return { ok: true, channel };
    // Joined once, but taken out of the room since by something else: this is a new join.
    if (current) this.memberships.delete(room);
    if (this.joinedCount() >= this.deps.config.limits.maxChannelsPerSocket)
      return { ok: false, error: 'too_many_channels' };
    // Reserved before the first await, so that concurrent joins count against the limit. The
    // params are kept for a refresh's check only where a hook reads them.
    const kept = this.deps.hooks.authorizeJoin ? params : undefined;
    const m: Membership = { channel, params: kept, answered: false };
    this.memberships.set(room, m);
    m.attempt = this.admit(m, room, since, params);
    let answer: JoinAnswer;
    try {
      answer = await m.attempt;
    } catch (err) {
      if (this.memberships.get(room) === m) this.memberships.delete(room);
      throw err;
    }
    return this.finalAnswer(m, room, answer);
  }

  /** `leave { channel }`: always wins over a pending join of the channel. */
  leave(payload: unknown): Answer {
    const parsed = leaveSchema.safeParse(payload);
    if (!parsed.success) return { ok: false, error: 'invalid_request' };
    if (!isChannelName(parsed.data.channel)) return { ok: false, error: 'invalid_channel' };
    if (this.rateLimited()) return { ok: false, error: 'rate_limited' };
    const room = roomOf(parsed.data.channel);
    const m = this.memberships.get(room);
    if (m) {
      this.memberships.delete(room);
      // A join that has not answered yet loses: it will neither join nor replay.
      if (!m.answered) m.cancelled = 'invalid_request';
    }
    this.transport.leaveRoom(room);
    return { ok: true };
  }

  /**
   * `refresh { token }`, applied in the order sent: two sent close together would otherwise race
   * on the token check, and the older identity could win.
   */
  refresh(payload: unknown): Promise<Answer> {
    const run = this.refreshing
      ? this.refreshing.then(() => this.refreshNow(payload))
      : this.refreshNow(payload);
    // The next refresh waits for this one whatever its outcome (its caller sees the failure).
    const settled = run.catch(() => undefined);
    this.refreshing = settled;
    void settled.then(() => {
      if (this.refreshing === settled) this.refreshing = undefined;
    });
    return run;
  }

  /** The connection is gone: timers and per-connection state go with it. */
  end(): void {
    this.ended = true;
    if (this.expiry) this.deps.expiries.remove(this.expiry);
    this.expiry = undefined;
    this.deps.eventLimiter.forget(this.transport.id);
    this.deps.users.remove(this);
  }

  /**
   * A backend unsubscribed the user from `channel` (control API): out of it like a refresh's
   * revocation, with the reason `unsubscribed` (a `left` event, or a pending join's answer).
   * True when the connection held the channel or was joining it.
   */
  unsubscribe(channel: string): boolean {
    if (this.gone) return false;
    return this.takeOut(roomOf(channel), channel, 'unsubscribed');
  }

  /**
   * A backend disconnected the user (control API): the client is told why (`disconnected`) and
   * the connection is ended so that clients do not reconnect on their own. False when it is
   * already closing.
   */
  disconnect(): boolean {
    if (this.gone) return false;
    this.deps.log.info({ conn: this.transport.id }, 'socket disconnected by a backend');
    this.transport.close('disconnected');
    return true;
  }

  private async refreshNow(payload: unknown): Promise<Answer> {
    const parsed = refreshSchema.safeParse(payload);
    // The contract knows one refusal for refresh: a payload without a usable token is one.
    if (!parsed.success) return { ok: false, error: 'unauthorized' };
    if (this.rateLimited()) return { ok: false, error: 'rate_limited' };
    const { transport, deps } = this;
    const current = transport.identity;
    try {
      const identity = await authenticateSocket(
        { ...transport.handshake, auth: { ...transport.handshake.auth, token: parsed.data.token } },
        deps.hooks,
        deps.defaults,
      );
      // A fresh token must be for the same user: refresh extends a session, it does not switch it.
      if (identity.userId !== current.userId) return { ok: false, error: 'unauthorized' };
      // Ended meanwhile: the identity is no longer this session's to change.
      if (this.ended) return { ok: false, error: 'unauthorized' };
      transport.identity = sessionIdentity(identity, current.data);
      this.armExpiry();
    } catch {
      return { ok: false, error: 'unauthorized' };
    }
    // Answered once the channels the new identity refuses are left and told.
    await this.recheck();
    return { ok: true };
  }

  private context(): SocketContext {
    const { userId, channels, data } = this.transport.identity;
    return { socketId: this.transport.id, userId, channels, data };
  }

  private joinedCount(): number {
    let joined = 0;
    for (const room of this.transport.rooms()) if (channelOfRoom(room) !== undefined) joined++;
    for (const [room, m] of this.memberships)
      if (!m.answered && !this.transport.inRoom(room)) joined++;
    return joined;
  }

  private rateLimited(): boolean {
    // Ended: no bucket is made again for an id end() forgot (the event is refused anyway).
    if (this.ended) return false;
    return this.deps.eventLimiter.take(this.transport.id) > 0;
  }

  private armExpiry(): void {
    if (this.expiry) this.deps.expiries.remove(this.expiry);
    this.expiry = undefined;
    const exp = this.transport.identity.exp;
    if (exp === undefined) return;
    this.expiry = this.deps.expiries.add(exp * 1000, this);
  }

  /** The token's expiry has come (the node's expiry schedule calls this). */
  expire(): void {
    // A refresh re-arms at once, so the entry that fires is the current token's.
    this.expiry = undefined;
    this.deps.log.info({ conn: this.transport.id }, 'socket token expired');
    this.transport.close('token_expired');
  }

  /** The join rule (hook or built-in) for `ctx`; a hook that throws refuses. */
  private async allowed(ctx: SocketContext, channel: string, params: unknown): Promise<boolean> {
    const { hooks, defaults, log } = this.deps;
    let decision: unknown;
    try {
      decision = hooks.authorizeJoin
        ? await hooks.authorizeJoin(ctx, channel, params, defaults)
        : await defaults.authorizeJoin(ctx, channel, params);
    } catch (err) {
      // A hook that fails refuses, like an authenticate hook that throws.
      log.warn({ err, conn: this.transport.id, channel }, 'authorizeJoin hook threw');
      return false;
    }
    // Fail closed: only an explicit allow (or no opinion) lets the connection in.
    return decision === true || decision === undefined;
  }

  /** Why a join must stop here, or undefined while it may go on. */
  private stopped(m: Membership): JoinAnswer | undefined {
    if (m.cancelled) return { ok: false, error: m.cancelled };
    return this.gone ? { ok: false, error: 'invalid_request' } : undefined;
  }

  /** The answer of `m`'s join as it goes out: a cancellation wins; ok marks it answered. */
  private finalAnswer(m: Membership, room: string, answer: JoinAnswer): LateAnswer {
    return new LateAnswer(() => {
      if (m.cancelled) return { ok: false, error: m.cancelled };
      if (!answer.ok) {
        if (this.memberships.get(room) === m) this.memberships.delete(room);
        return answer;
      }
      m.answered = true;
      delete m.attempt;
      return answer;
    });
  }

  /** Authorization, then subscription or recovery, for a join that passed the checks. */
  private async admit(
    m: Membership,
    room: string,
    since: string | undefined,
    params: unknown,
  ): Promise<JoinAnswer> {
    if (!(await this.allowed(this.context(), m.channel, params)))
      return { ok: false, error: 'forbidden' };
    // Called off while authorizing (a leave, a refresh), or gone: no room, no replay.
    const stop = this.stopped(m);
    if (stop) return stop;
    // From here on every wait is on Redis: all of it within one command timeout.
    const within = deadline(this.deps.config.redis.commandTimeoutMs, (why, err) =>
      this.deps.log.debug(
        { err, conn: this.transport.id, channel: m.channel, why },
        'join step without Redis: answered without it',
      ),
    );
    return since === undefined
      ? this.subscribe(m, room, within)
      : this.recover(m, room, since, within);
  }

  /** Plain join: subscribed first, then the position read, so everything after it arrives live. */
  private async subscribe(m: Membership, room: string, within: Within): Promise<JoinAnswer> {
    const { channel } = m;
    this.transport.joinRoom(room);
    const answer: JoinAnswer = { ok: true, channel };
    // Redis away or too slow: in the room all the same (the room is subscribed again when Redis
    // is back), but with no position: none is proven to arrive after it.
    if (await within(() => this.deps.ensureSubscribed(room), REPEATABLE)) {
      // Read after the subscription is active: every message past this position arrives live,
      // so a client that saw none can still resume from here (the history starts if it had none).
      const offset = await within(() => this.deps.bus.position(channel), REPEATABLE);
      if (offset?.value !== undefined) answer.offset = offset.value;
    }
    // Called off meanwhile: whatever called it off took the connection out of the room.
    return this.stopped(m) ?? answer;
  }

  /**
   * Join with `since`: buffer live messages (the connection is not in the room yet; the tap keeps
   * the node subscribed), read history after `since`, wait until every message published before
   * the read has reached this node, then hand over history, the buffered messages it did not
   * contain, and the room, in one synchronous step: no gap, no duplicate.
   *
   * A step that fails or does not finish before the join's deadline (Redis away) makes it
   * `recovered: false`: the hand-over then happens at once, with what is proven so far.
   */
  private async recover(
    m: Membership,
    room: string,
    since: string,
    within: Within,
  ): Promise<JoinAnswer> {
    const { channel } = m;
    const { bus, history, taps } = this.deps;
    const buffered: ChannelMessage[] = [];
    const live = taps.open(room, (msg) => buffered.push(msg));
    try {
      const subscribed = (await within(() => live.subscribed))?.value === true;
      const early = this.stopped(m);
      if (early) return early;
      const { size } = history.for(channel);
      // One read is enough: history never holds more than `size` messages after a `since` it
      // can still serve. Unreadable history, or a subscription not proven: not recovered.
      const page =
        subscribed && size > 0 && parseOffset(since)
          ? (await within(() => bus.history(channel, { since, limit: size }), REPEATABLE))?.value
          : undefined;
      let complete = page?.complete ?? false;
      const missed = complete ? page!.messages : [];
      // A position only where the subscription is proven: every message after it arrives live.
      const top = complete
        ? page!.top
        : subscribed
          ? (await within(() => bus.position(channel), REPEATABLE))?.value
          : undefined;
      if (subscribed && !(await within(() => bus.settle(channel)))) complete = false;
      // Left (or refused by a refresh) meanwhile, or gone: no replay, no room.
      const stop = this.stopped(m);
      if (stop) return stop;
      // From here to the end: synchronous, so no live message can slip between the steps.
      const lastSent = complete ? parseOffset(missed.at(-1)?.offset ?? since) : undefined;
      const fresh = buffered.filter((msg) => {
        const o = parseOffset(msg.offset);
        return !lastSent || !o || o.epoch !== lastSent.epoch || o.n > lastSent.n;
      });
      const offset = fresh.at(-1)?.offset ?? missed.at(-1)?.offset ?? top;
      const answer: JoinAnswer = complete
        ? { ok: true, channel, recovered: true, missed: missed.length }
        : { ok: true, channel, recovered: false };
      if (offset !== undefined) answer.offset = offset;
      for (const msg of complete ? [...missed, ...fresh] : fresh) this.transport.send(msg);
      this.transport.joinRoom(room);
      return answer;
    } finally {
      live.close();
    }
  }

  /**
   * After a refresh: every channel held or being joined, checked again like a join with the new
   * identity. Refused ones are left (`left` event) or, still joining, answer `forbidden`.
   */
  private async recheck(): Promise<void> {
    const ctx = this.context();
    const held = new Map<string, Membership | undefined>();
    for (const room of this.transport.rooms())
      if (channelOfRoom(room) !== undefined) held.set(room, this.memberships.get(room));
    for (const [room, m] of this.memberships) held.set(room, m);
    const verdicts = await Promise.all(
      [...held].map(async ([room, m]) => {
        const channel = m?.channel ?? channelOfRoom(room)!;
        return { room, m, channel, ok: await this.allowed(ctx, channel, m?.params) };
      }),
    );
    if (this.gone) return;
    for (const v of verdicts) if (!v.ok) this.revoke(v.room, v.channel, v.m);
  }

  /** Takes the connection out of a channel a refresh no longer allows (if nothing changed since). */
  private revoke(room: string, channel: string, m: Membership | undefined): void {
    // Left, or left and joined again (that join was checked with the new identity): leave it be.
    if (this.memberships.get(room) !== m) return;
    this.takeOut(room, channel, 'forbidden');
  }

  /**
   * The server takes the connection out of a channel: a join not answered yet is called off and
   * answers `reason`; a joined channel is left and the client gets `left { channel, reason }`.
   * True when there was something to take out.
   */
  private takeOut(room: string, channel: string, reason: LeftReason): boolean {
    const m = this.memberships.get(room);
    if (m) this.memberships.delete(room);
    if (m && !m.answered) {
      m.cancelled = reason;
      // A plain join may already be in the room (it joins before reading the position).
      this.transport.leaveRoom(room);
      return true;
    }
    if (!this.transport.inRoom(room)) return false;
    this.transport.leaveRoom(room);
    this.deps.log.info({ conn: this.transport.id, channel, reason }, LEFT_LOG[reason]);
    this.transport.left({ channel, reason });
    return true;
  }
}

/** The log line of each way the server takes a connection out of a channel. */
const LEFT_LOG: Record<LeftReason, string> = {
  forbidden: 'channel left: the refreshed token no longer allows it',
  unsubscribed: 'channel left: a backend unsubscribed the user',
};
