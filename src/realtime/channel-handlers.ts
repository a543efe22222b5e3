import type { Socket } from 'socket.io';
import type { SocketContext } from '../auth/hooks.js';
import type { ChannelMessage } from '../delivery/message.js';
import { channelOfRoom, isChannelName, roomOf } from '../delivery/names.js';
import { parseOffset } from '../delivery/offset.js';
import { authenticateSocket } from './socket-auth.js';
import {
  joinSchema,
  leaveSchema,
  refreshSchema,
  type JoinError,
  type LeftEvent,
} from './schemas.js';
import type { RealtimeDeps, SocketData } from './socket-server.js';

type Ack = (answer: unknown) => void;

/** Join answer: ok with the channel's position, or a refusal code. */
type JoinAnswer =
  | { ok: true; channel: string; offset?: string; recovered?: boolean; missed?: number }
  | { ok: false; error: JoinError };

/**
 * One channel of the socket, from its `join` until it is left (a `leave`, a `refresh` that no
 * longer allows it) or its join is refused. Kept in the handlers' closure, never in `socket.data`
 * (which must stay plain JSON for cross-node `fetchSockets`).
 */
interface Membership {
  channel: string;
  /** The join's `params`, for an authorizeJoin hook: a refresh checks the channel with them. */
  params: unknown;
  /** The join's work, while it has not answered. */
  attempt?: Promise<JoinAnswer>;
  /** Set in the same step as the ok answer is sent: from then on a revocation says `left`. */
  answered: boolean;
  /** Called off before it answered (a leave, a refresh): the join answers this refusal. */
  cancelled?: JoinError;
}

/**
 * An answer decided at the moment it is sent ({@link on} settles it and acknowledges in one
 * synchronous step): a join that was called off after its work finished, but before its answer
 * went out, answers the refusal rather than an ok the socket no longer matches.
 */
class LateAnswer {
  constructor(readonly settle: () => unknown) {}
}

// Timers cannot wait past 2^31-1 ms; a later expiry is re-armed when this one fires.
const MAX_TIMER_MS = 2 ** 31 - 1;

/** What a step run against a join's deadline ({@link Within}) gave: its value, or undefined. */
type InTime<T> = { value: T } | undefined;

/** Runs a Redis-dependent step of a join, bounded by the join's deadline. */
type Within = <T>(step: () => Promise<T>) => Promise<InTime<T>>;

/**
 * One deadline, `ms` from now, for every Redis-dependent step of a join: a step gives its value,
 * or undefined when it failed or the deadline came first (Redis down, paused, or slow); a step
 * not started by then is never started. Nothing waits for a step that came too late: its result
 * is dropped, so the join goes on (and answers) at once, and no late work follows its answer.
 */
function deadline(ms: number): Within {
  const end = Date.now() + ms;
  return <T>(step: () => Promise<T>): Promise<InTime<T>> => {
    const left = end - Date.now();
    if (left <= 0) return Promise.resolve(undefined);
    return new Promise<InTime<T>>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), left);
      const done = (result: InTime<T>): void => {
        clearTimeout(timer);
        resolve(result);
      };
      let running: Promise<T>;
      try {
        running = step();
      } catch {
        return done(undefined);
      }
      running.then(
        (value) => done({ value }),
        () => done(undefined),
      );
    });
  };
}

/**
 * The channel events of one socket: `join`, `leave`, `refresh`. Every event is answered through its
 * acknowledgement, whatever the payload (a bad one gets an error answer, never silence or a crash).
 *
 * A `leave` wins over a join of the same channel that has not answered yet: that join never puts
 * the socket in the room (nor replays history) and answers `invalid_request`. After a successful
 * `refresh`, every channel the socket holds or is joining is checked again like a join (hooks
 * included, with the join's params); a joined one no longer allowed is left and the client gets
 * `left` `{ channel, reason: "forbidden" }` before the refresh's answer; a pending one answers
 * `forbidden`.
 *
 * Every Redis-dependent step of a join (subscription, position, history, settle) shares one
 * deadline of `redis.commandTimeoutMs`, counted once the join is authorized: with Redis down or
 * paused a join still answers in time. A plain join then holds the room (the node subscribes it
 * again when Redis is back, see cluster/adapter.ts) and answers without `offset`; a join with
 * `since` answers `recovered: false` (never `true` unless proven) and holds the room too.
 */
export function handleChannels(socket: Socket, deps: RealtimeDeps): void {
  const { config, log } = deps;
  const limits = config.limits;
  /** By room: joins in progress and channels joined through `join`. */
  const memberships = new Map<string, Membership>();
  let expiryTimer: NodeJS.Timeout | undefined;
  // Successful refreshes so far: only the latest one's check is applied.
  let refreshes = 0;

  const data = (): SocketData => socket.data as SocketData;
  const context = (): SocketContext => ({
    socketId: socket.id,
    userId: data().userId,
    channels: data().channels,
    data: data().data,
  });
  const joinedCount = (): number => {
    let pending = 0;
    for (const [room, m] of memberships) if (!m.answered && !socket.rooms.has(room)) pending++;
    return socket.rooms.size - 1 + pending;
  };
  const rateLimited = (): boolean => deps.eventLimiter.take(socket.id) > 0;

  const armExpiry = (): void => {
    if (expiryTimer) clearTimeout(expiryTimer);
    expiryTimer = undefined;
    const exp = data().exp;
    if (exp === undefined) return;
    const ms = exp * 1000 - Date.now();
    expiryTimer = setTimeout(
      () => {
        if ((data().exp ?? Infinity) * 1000 > Date.now()) return armExpiry();
        log.info({ conn: socket.id }, 'socket token expired');
        socket.emit('error', {
          code: 'token_expired',
          message: 'The token expired; reconnect with a fresh one.',
        });
        socket.disconnect(true);
      },
      Math.min(Math.max(ms, 0), MAX_TIMER_MS),
    );
  };
  armExpiry();

  /** The join rule (hook or built-in) for `ctx`; a hook that throws refuses. */
  const allowed = async (
    ctx: SocketContext,
    channel: string,
    params: unknown,
  ): Promise<boolean> => {
    let decision: unknown;
    try {
      decision = deps.hooks.authorizeJoin
        ? await deps.hooks.authorizeJoin(ctx, channel, params, deps.defaults)
        : await deps.defaults.authorizeJoin(ctx, channel, params);
    } catch (err) {
      // A hook that fails refuses, like an authenticate hook that throws.
      log.warn({ err, conn: socket.id, channel }, 'authorizeJoin hook threw');
      return false;
    }
    // Fail closed: only an explicit allow (or no opinion) lets the socket in.
    return decision === true || decision === undefined;
  };

  /** Why a join must stop here, or undefined while it may go on. */
  const stopped = (m: Membership): JoinAnswer | undefined =>
    m.cancelled
      ? { ok: false, error: m.cancelled }
      : socket.disconnected
        ? { ok: false, error: 'invalid_request' }
        : undefined;

  /** The answer of `m`'s join as it goes out: a cancellation wins; ok marks it answered. */
  const finalAnswer = (m: Membership, room: string, answer: JoinAnswer): LateAnswer =>
    new LateAnswer(() => {
      if (m.cancelled) return { ok: false, error: m.cancelled };
      if (!answer.ok) {
        if (memberships.get(room) === m) memberships.delete(room);
        return answer;
      }
      m.answered = true;
      delete m.attempt;
      return answer;
    });

  const join = async (payload: unknown): Promise<JoinAnswer | LateAnswer> => {
    const parsed = joinSchema.safeParse(payload);
    if (!parsed.success) return { ok: false, error: 'invalid_request' };
    const { channel, since, params } = parsed.data;
    if (!isChannelName(channel)) return { ok: false, error: 'invalid_channel' };
    if (rateLimited()) return { ok: false, error: 'rate_limited' };
    const room = roomOf(channel);
    const current = memberships.get(room);
    // The same channel's join still in progress: answer as it will, and never replay twice.
    if (current?.attempt && !current.answered) {
      const a = await current.attempt;
      return finalAnswer(current, room, a.ok ? { ok: true, channel } : a);
    }
    if (socket.rooms.has(room)) return { ok: true, channel };
    // Joined once, but taken out of the room since by something else: this is a new join.
    if (current) memberships.delete(room);
    if (joinedCount() >= limits.maxChannelsPerSocket)
      return { ok: false, error: 'too_many_channels' };
    // Reserved before the first await, so that concurrent joins count against the limit.
    // The params are kept for a refresh's check only where a hook reads them (the built-in
    // rule does not).
    const kept = deps.hooks.authorizeJoin ? params : undefined;
    const m: Membership = { channel, params: kept, answered: false };
    memberships.set(room, m);
    m.attempt = admit(m, room, since, params);
    let answer: JoinAnswer;
    try {
      answer = await m.attempt;
    } catch (err) {
      if (memberships.get(room) === m) memberships.delete(room);
      throw err;
    }
    return finalAnswer(m, room, answer);
  };

  /** Authorization, then subscription or recovery, for a join that passed the checks. */
  const admit = async (
    m: Membership,
    room: string,
    since: string | undefined,
    params: unknown,
  ): Promise<JoinAnswer> => {
    if (!(await allowed(context(), m.channel, params))) return { ok: false, error: 'forbidden' };
    // Called off while authorizing (a leave, a refresh), or gone: no room, no replay.
    const stop = stopped(m);
    if (stop) return stop;
    // From here on every wait is on Redis: all of it within one command timeout.
    const within = deadline(config.redis.commandTimeoutMs);
    return since === undefined ? subscribe(m, room, within) : recover(m, room, since, within);
  };

  /** Plain join: subscribed first, then the position read, so everything after it arrives live. */
  const subscribe = async (m: Membership, room: string, within: Within): Promise<JoinAnswer> => {
    const { channel } = m;
    void socket.join(room);
    const answer: JoinAnswer = { ok: true, channel };
    // Redis away or too slow: in the room all the same (the room is subscribed again when Redis
    // is back, see cluster/adapter.ts), but with no position: none is proven to arrive after it.
    if (await within(() => deps.ensureSubscribed(room))) {
      // Read after the subscription is active: every message past this position arrives live,
      // so a client that saw none can still resume from here (the history starts if it had none).
      const offset = await within(() => deps.bus.position(channel));
      if (offset?.value !== undefined) answer.offset = offset.value;
    }
    // Called off meanwhile: whatever called it off took the socket out of the room.
    return stopped(m) ?? answer;
  };

  /**
   * Join with `since`: buffer live messages (the socket is not in the room yet; the tap keeps the
   * node subscribed), read history after `since`, wait until every message published before the
   * read has reached this node, then hand over history, the buffered messages it did not
   * contain, and the room, in one synchronous step: no gap, no duplicate.
   *
   * A step that fails or does not finish before the join's deadline (Redis away) makes it
   * `recovered: false`: the hand-over then happens at once, with what is proven so far.
   */
  const recover = async (
    m: Membership,
    room: string,
    since: string,
    within: Within,
  ): Promise<JoinAnswer> => {
    const { channel } = m;
    const buffered: ChannelMessage[] = [];
    const live = deps.taps.open(room, (msg) => buffered.push(msg));
    try {
      const subscribed = (await within(() => live.subscribed))?.value === true;
      const early = stopped(m);
      if (early) return early;
      const { size } = deps.history.for(channel);
      // One read is enough: history never holds more than `size` messages after a `since` it
      // can still serve. Unreadable history, or a subscription not proven: not recovered.
      const page =
        subscribed && size > 0 && parseOffset(since)
          ? (await within(() => deps.bus.history(channel, { since, limit: size })))?.value
          : undefined;
      let complete = page?.complete ?? false;
      const missed = complete ? page!.messages : [];
      // A position only where the subscription is proven: every message after it arrives live.
      const top = complete
        ? page!.top
        : subscribed
          ? (await within(() => deps.bus.position(channel)))?.value
          : undefined;
      if (subscribed && !(await within(() => deps.bus.settle(channel)))) complete = false;
      // Left (or refused by a refresh) meanwhile, or gone: no replay, no room.
      const stop = stopped(m);
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
      for (const msg of complete ? [...missed, ...fresh] : fresh) socket.emit('msg', msg);
      void socket.join(room);
      return answer;
    } finally {
      live.close();
    }
  };

  const leave = (payload: unknown): { ok: true } | { ok: false; error: string } => {
    const parsed = leaveSchema.safeParse(payload);
    if (!parsed.success) return { ok: false, error: 'invalid_request' };
    if (!isChannelName(parsed.data.channel)) return { ok: false, error: 'invalid_channel' };
    if (rateLimited()) return { ok: false, error: 'rate_limited' };
    const room = roomOf(parsed.data.channel);
    const m = memberships.get(room);
    if (m) {
      memberships.delete(room);
      // A join that has not answered yet loses: it will neither join nor replay.
      if (!m.answered) m.cancelled = 'invalid_request';
    }
    void socket.leave(room);
    return { ok: true };
  };

  /**
   * After a refresh: every channel held or being joined, checked again like a join with the new
   * identity. Refused ones are left (`left` event) or, still joining, answer `forbidden`.
   */
  const recheck = async (round: number): Promise<void> => {
    const ctx = context();
    const held = new Map<string, Membership | undefined>();
    for (const room of socket.rooms)
      if (room !== socket.id && channelOfRoom(room) !== undefined)
        held.set(room, memberships.get(room));
    for (const [room, m] of memberships) held.set(room, m);
    const verdicts = await Promise.all(
      [...held].map(async ([room, m]) => {
        const channel = m?.channel ?? channelOfRoom(room)!;
        return { room, m, channel, ok: await allowed(ctx, channel, m?.params) };
      }),
    );
    // A later refresh checks everything again with its own identity.
    if (round !== refreshes || socket.disconnected) return;
    for (const v of verdicts) if (!v.ok) revoke(v.room, v.channel, v.m);
  };

  /** Takes the socket out of a channel a refresh no longer allows (if nothing changed since). */
  const revoke = (room: string, channel: string, m: Membership | undefined): void => {
    // Left, or left and joined again (that join was checked with the new identity): leave it be.
    if (memberships.get(room) !== m) return;
    if (m) memberships.delete(room);
    if (m && !m.answered) {
      m.cancelled = 'forbidden';
      void socket.leave(room);
      return;
    }
    if (!socket.rooms.has(room)) return;
    void socket.leave(room);
    log.info({ conn: socket.id, channel }, 'channel left: the refreshed token no longer allows it');
    socket.emit('left', { channel, reason: 'forbidden' } satisfies LeftEvent);
  };

  const refresh = async (
    payload: unknown,
  ): Promise<{ ok: true } | { ok: false; error: string }> => {
    const parsed = refreshSchema.safeParse(payload);
    // The contract knows one refusal for refresh: a payload without a usable token is one.
    if (!parsed.success) return { ok: false, error: 'unauthorized' };
    if (rateLimited()) return { ok: false, error: 'rate_limited' };
    const current = data();
    try {
      const identity = await authenticateSocket(
        {
          auth: {
            ...((socket.handshake.auth ?? {}) as Record<string, unknown>),
            token: parsed.data.token,
          },
          headers: socket.handshake.headers,
          query: socket.handshake.query,
          address: socket.handshake.address,
        },
        deps.hooks,
        deps.defaults,
      );
      // A fresh token must be for the same user: refresh extends a session, it does not switch it.
      if (identity.userId !== current.userId) return { ok: false, error: 'unauthorized' };
      socket.data = {
        userId: identity.userId,
        channels: identity.channels ?? [],
        data: identity.data ?? current.data,
        exp: identity.exp,
      } satisfies SocketData;
      armExpiry();
    } catch {
      return { ok: false, error: 'unauthorized' };
    }
    // Answered once the channels the new identity refuses are left and told.
    await recheck(++refreshes);
    return { ok: true };
  };

  // Refreshes are applied one after the other, in the order they were sent: two sent close
  // together would otherwise race on the token check, and the older identity could win.
  let refreshing: Promise<unknown> = Promise.resolve();
  const refreshInOrder = (payload: unknown): Promise<unknown> => {
    const run = refreshing.then(() => refresh(payload));
    refreshing = run.catch(() => undefined);
    return run;
  };

  on(socket, 'join', join, deps);
  on(socket, 'leave', leave, deps);
  on(socket, 'refresh', refreshInOrder, deps);
  // Any other event that asks for an answer gets one: a client must never wait for ever.
  socket.onAny((event: string, ...args: unknown[]) => {
    if (KNOWN_EVENTS.has(event)) return;
    const ack = args.at(-1);
    if (typeof ack === 'function') (ack as Ack)({ ok: false, error: 'invalid_request' });
  });

  socket.on('disconnect', () => {
    if (expiryTimer) clearTimeout(expiryTimer);
    deps.eventLimiter.forget(socket.id);
  });
}

/** The client events a socket may send; any other one with an acknowledgement is refused. */
const KNOWN_EVENTS = new Set(['join', 'leave', 'refresh']);

/** Registers an event whose handler's answer goes to the acknowledgement, whatever happens. */
function on(
  socket: Socket,
  event: string,
  handler: (payload: unknown) => unknown,
  deps: RealtimeDeps,
): void {
  socket.on(event, (...args: unknown[]) => {
    // Socket.IO hands the acknowledgement over as the last argument, whatever came before it
    // (`emit('join', ack)` with no payload, or extra arguments after the payload).
    const ack = (typeof args.at(-1) === 'function' ? args.pop() : undefined) as Ack | undefined;
    const payload = args[0];
    const body = typeof payload === 'function' ? undefined : payload;
    Promise.resolve()
      .then(() => handler(body))
      .then(
        (answer) => {
          // Settled and sent in one step: nothing can change the answer in between.
          const final = answer instanceof LateAnswer ? answer.settle() : answer;
          ack?.(final);
        },
        (err: unknown) => {
          deps.log.warn({ err, conn: socket.id, event }, 'socket event failed');
          ack?.({ ok: false, error: 'invalid_request' });
        },
      );
  });
}
