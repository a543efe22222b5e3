import type { Socket } from 'socket.io';
import type { SocketContext } from '../auth/hooks.js';
import type { ChannelMessage } from '../delivery/message.js';
import { isChannelName, roomOf } from '../delivery/names.js';
import { parseOffset } from '../delivery/offset.js';
import { authenticateSocket } from './socket-auth.js';
import { joinSchema, leaveSchema, refreshSchema, type JoinError } from './schemas.js';
import type { RealtimeDeps, SocketData } from './socket-server.js';

type Ack = (answer: unknown) => void;

/** Join answer: ok with the channel's position, or a refusal code. */
type JoinAnswer =
  | { ok: true; channel: string; offset?: string; recovered?: boolean; missed?: number }
  | { ok: false; error: JoinError };

// Timers cannot wait past 2^31-1 ms; a later expiry is re-armed when this one fires.
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The channel events of one socket: `join`, `leave`, `refresh`. Every event is answered through its
 * acknowledgement, whatever the payload (a bad one gets an error answer, never silence or a crash).
 */
export function handleChannels(socket: Socket, deps: RealtimeDeps): void {
  const { config, log } = deps;
  const limits = config.limits;
  const pending = new Map<string, Promise<JoinAnswer>>();
  let expiryTimer: NodeJS.Timeout | undefined;

  const data = (): SocketData => socket.data as SocketData;
  const context = (): SocketContext => ({
    socketId: socket.id,
    userId: data().userId,
    channels: data().channels,
    data: data().data,
  });
  const joinedCount = (): number => socket.rooms.size - 1 + pending.size;
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

  const join = async (payload: unknown): Promise<JoinAnswer> => {
    const parsed = joinSchema.safeParse(payload);
    if (!parsed.success) return { ok: false, error: 'invalid_request' };
    const { channel, since, params } = parsed.data;
    if (!isChannelName(channel)) return { ok: false, error: 'invalid_channel' };
    if (rateLimited()) return { ok: false, error: 'rate_limited' };
    const room = roomOf(channel);
    if (socket.rooms.has(room)) return { ok: true, channel };
    // The same channel's join still in progress: answer as it will, and never replay twice.
    const inflight = pending.get(room);
    if (inflight) return inflight.then((a) => (a.ok ? { ok: true, channel } : a));
    if (joinedCount() >= limits.maxChannelsPerSocket)
      return { ok: false, error: 'too_many_channels' };
    // Reserved before the first await, so that concurrent joins count against the limit.
    const attempt = admit(channel, room, since, params);
    pending.set(room, attempt);
    try {
      return await attempt;
    } finally {
      pending.delete(room);
    }
  };

  /** Authorization, then subscription or recovery, for a join that passed the checks. */
  const admit = async (
    channel: string,
    room: string,
    since: string | undefined,
    params: unknown,
  ): Promise<JoinAnswer> => {
    let decision: unknown;
    try {
      decision = deps.hooks.authorizeJoin
        ? await deps.hooks.authorizeJoin(context(), channel, params, deps.defaults)
        : await deps.defaults.authorizeJoin(context(), channel, params);
    } catch (err) {
      // A hook that fails refuses, like an authenticate hook that throws.
      log.warn({ err, conn: socket.id, channel }, 'authorizeJoin hook threw');
      return { ok: false, error: 'forbidden' };
    }
    // Fail closed: only an explicit allow (or no opinion) lets the socket in.
    if (decision !== true && decision !== undefined) return { ok: false, error: 'forbidden' };
    if (socket.disconnected) return { ok: false, error: 'invalid_request' };
    return since === undefined ? subscribe(channel, room) : recover(channel, room, since);
  };

  /** Plain join: subscribed first, then the position read, so everything after it arrives live. */
  const subscribe = async (channel: string, room: string): Promise<JoinAnswer> => {
    void socket.join(room);
    // Redis down: the room is subscribed again when it returns (see cluster/adapter.ts).
    await deps.ensureSubscribed(room).catch(() => {});
    const answer: JoinAnswer = { ok: true, channel };
    // Read after the subscription is active: every message past this position arrives live, so
    // a client that saw none can still resume from here (the history starts if it had none).
    const offset = await deps.bus.position(channel).catch(() => undefined);
    if (offset !== undefined) answer.offset = offset;
    return answer;
  };

  /**
   * Join with `since`: buffer live messages (the socket is not in the room yet; the tap keeps the
   * node subscribed), read history after `since`, wait until every message published before the
   * read has reached this node, then hand over history, the buffered messages it did not
   * contain, and the room, in one synchronous step: no gap, no duplicate.
   */
  const recover = async (channel: string, room: string, since: string): Promise<JoinAnswer> => {
    const buffered: ChannelMessage[] = [];
    const live = await deps.taps.tap(room, (m) => buffered.push(m));
    try {
      const { size } = deps.history.for(channel);
      // One read is enough: history never holds more than `size` messages after a `since` it
      // can still serve. Unreadable history, or a subscription not proven: not recovered.
      const page =
        live.subscribed && size > 0 && parseOffset(since)
          ? await deps.bus.history(channel, { since, limit: size }).catch(() => undefined)
          : undefined;
      let complete = page?.complete ?? false;
      const missed = complete ? page!.messages : [];
      const top = complete ? page!.top : await deps.bus.position(channel).catch(() => undefined);
      await deps.bus.settle(channel).catch(() => (complete = false));
      if (socket.disconnected) return { ok: false, error: 'invalid_request' };
      // From here to the end: synchronous, so no live message can slip between the steps.
      const lastSent = complete ? parseOffset(missed.at(-1)?.offset ?? since) : undefined;
      const fresh = buffered.filter((m) => {
        const o = parseOffset(m.offset);
        return !lastSent || !o || o.epoch !== lastSent.epoch || o.n > lastSent.n;
      });
      const offset = fresh.at(-1)?.offset ?? missed.at(-1)?.offset ?? top;
      const answer: JoinAnswer = complete
        ? { ok: true, channel, recovered: true, missed: missed.length }
        : { ok: true, channel, recovered: false };
      if (offset !== undefined) answer.offset = offset;
      for (const m of complete ? [...missed, ...fresh] : fresh) socket.emit('msg', m);
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
    void socket.leave(room);
    return { ok: true };
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
      return { ok: true };
    } catch {
      return { ok: false, error: 'unauthorized' };
    }
  };

  on(socket, 'join', join, deps);
  on(socket, 'leave', leave, deps);
  on(socket, 'refresh', refresh, deps);

  socket.on('disconnect', () => {
    if (expiryTimer) clearTimeout(expiryTimer);
    deps.eventLimiter.forget(socket.id);
  });
}

/** Registers an event whose handler's answer goes to the acknowledgement, whatever happens. */
function on(
  socket: Socket,
  event: string,
  handler: (payload: unknown) => unknown,
  deps: RealtimeDeps,
): void {
  socket.on(event, (payload: unknown, maybeAck: unknown) => {
    // `emit('join', ack)` with no payload: the acknowledgement comes first.
    const ack = (
      typeof maybeAck === 'function'
        ? maybeAck
        : typeof payload === 'function'
          ? payload
          : undefined
    ) as Ack | undefined;
    const body = typeof payload === 'function' ? undefined : payload;
    Promise.resolve()
      .then(() => handler(body))
      .then(
        (answer) => ack?.(answer),
        (err: unknown) => {
          deps.log.warn({ err, conn: socket.id, event }, 'socket event failed');
          ack?.({ ok: false, error: 'invalid_request' });
        },
      );
  });
}
