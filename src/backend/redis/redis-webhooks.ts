import type { Cluster, Redis } from 'ioredis';
import {
  WEBHOOK_EVENTS,
  type LocalEdge,
  type StoreOutcome,
  type WebhookEvent,
  type WebhookEventName,
} from '../../webhooks/events.js';
import type { WebhookStore, WebhookStoreSettings } from '../../webhooks/store.js';

/*
 * Layout. Every key shares the hash tag `{wh}`, so each script below runs on one Redis Cluster
 * slot; the per-channel and per-member sets are named inside the scripts from the prefix handed
 * in (they share the tag, hence the slot). Occupancy transitions are far rarer than pushes, so
 * one slot is enough.
 *   <p>:{wh}:c\0<channel>            set of node ids with sockets on the channel
 *   <p>:{wh}:m\0<channel>\0<user>     set of node ids with sockets of the user on the channel
 *   <p>:{wh}:held\0<node>             what a node holds (to take it down when the node is gone)
 *   <p>:{wh}:alive                    zset node id -> last heartbeat (ms)
 *   <p>:{wh}:due                      zset entry -> when its vacate / removed event is due (ms)
 *   <p>:{wh}:events                   the stream of undelivered events (consumer group `deliver`)
 *   <p>:{wh}:lease                    which node delivers (one at a time: order per channel)
 *   <p>:{wh}:last\0<channel>        when the channel's last member event is due (vacate after it)
 * Entries are `c\0<channel>` and `m\0<channel>\0<user>` (channel names hold no NUL).
 */

/** Queues one event, dropping the oldest undelivered ones past the bound. */
const EMIT = `
local dropped = 0
local function emit(stream, maxPending, enabled, name, index, channel, user, ts)
  if string.sub(enabled, index, index) ~= '1' then return end
  local len = redis.call('XLEN', stream)
  while len >= maxPending do
    local oldest = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
    if #oldest == 0 then break end
    redis.call('XDEL', stream, oldest[1][1])
    dropped = dropped + 1
    len = len - 1
  end
  if user == '' then
    redis.call('XADD', stream, '*', 'n', name, 'c', channel, 't', ts)
  else
    redis.call('XADD', stream, '*', 'n', name, 'c', channel, 'u', user, 't', ts)
  end
end
local function parse(entry)
  if string.sub(entry, 1, 1) == 'c' then return 'c', string.sub(entry, 3), '' end
  local sep = string.find(entry, '\\0', 3, true)
  return 'm', string.sub(entry, 3, sep - 1), string.sub(entry, sep + 1)
end
-- A set lost its last node: the vacate / removed event waits in 'due' (a comeback cancels it).
-- A channel's entry is due after every member entry of the channel, also ones another node
-- scheduled with a later clock (kept in 'last'): member_removed always comes before its vacate.
local function down(prefix, due, node, entry, at, delay)
  local set = prefix .. entry
  if redis.call('SREM', set, node) == 1 and redis.call('SCARD', set) == 0 then
    local kind, channel = parse(entry)
    local last = prefix .. 'last\\0' .. channel
    local when = at + delay
    local prev = tonumber(redis.call('GET', last) or '0')
    if kind == 'm' then
      if when > prev then redis.call('SET', last, when, 'PX', delay + 60000) end
    else
      when = math.max(when, prev) + 0.5
      redis.call('DEL', last)
    end
    redis.call('ZADD', due, when, entry)
  end
end
`;

/**
 * A node's edges, in order. KEYS: due, stream, held. ARGV: prefix, node, delay, maxPending,
 * enabled (one 0/1 per event name, in WEBHOOK_EVENTS order), count, then per edge: kind (c|m),
 * edge (u|d), channel, user, at. Returns the number of events dropped.
 */
const APPLY_SCRIPT = `${EMIT}
local due, stream, held = KEYS[1], KEYS[2], KEYS[3]
local prefix, node = ARGV[1], ARGV[2]
local delay, maxPending, enabled = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local i = 7
for k = 1, tonumber(ARGV[6]) do
  local kind, edge, channel, user, at = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], tonumber(ARGV[i + 4])
  i = i + 5
  local entry = kind == 'c' and ('c\\0' .. channel) or ('m\\0' .. channel .. '\\0' .. user)
  if edge == 'u' then
    redis.call('SADD', held, entry)
    local set = prefix .. entry
    if redis.call('SADD', set, node) == 1 and redis.call('SCARD', set) == 1 then
      -- Back within the delay: the pending vacate is cancelled and nothing is sent at all.
      if redis.call('ZREM', due, entry) == 0 then
        if kind == 'c' then
          emit(stream, maxPending, enabled, 'channel_occupied', 1, channel, '', at)
        else
          emit(stream, maxPending, enabled, 'member_added', 3, channel, user, at)
        end
      end
    end
  else
    redis.call('SREM', held, entry)
    down(prefix, due, node, entry, at, delay)
  end
end
return dropped
`;

/** KEYS: due, stream. ARGV: prefix, now, delay, maxPending, enabled, limit. */
const DUE_SCRIPT = `${EMIT}
local due, stream = KEYS[1], KEYS[2]
local prefix, now, delay = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local maxPending, enabled = tonumber(ARGV[4]), ARGV[5]
local entries = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[6]))
for j = 1, #entries, 2 do
  local entry, at = entries[j], math.floor(tonumber(entries[j + 1]) - delay)
  redis.call('ZREM', due, entry)
  if redis.call('SCARD', prefix .. entry) == 0 then
    local kind, channel, user = parse(entry)
    if kind == 'c' then
      emit(stream, maxPending, enabled, 'channel_vacated', 2, channel, '', at)
    else
      emit(stream, maxPending, enabled, 'member_removed', 4, channel, user, at)
    end
  end
end
return dropped
`;

/**
 * Heartbeat of ARGV node, and takes down every node silent since now - timeout (or, with
 * ARGV leaving = 1, this node itself). KEYS: alive, due. ARGV: prefix, node, now, timeout, delay,
 * leaving. Returns 1 when the node was not (or no longer) counted alive: it must say again what
 * it holds.
 */
const HEARTBEAT_SCRIPT = `${EMIT}
local alive, due = KEYS[1], KEYS[2]
local prefix, node, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local timeout, delay = tonumber(ARGV[4]), tonumber(ARGV[5])
local gone
local back = 0
if ARGV[6] == '1' then
  gone = { node }
else
  back = redis.call('ZADD', alive, now, node)
  gone = redis.call('ZRANGEBYSCORE', alive, '-inf', now - timeout)
end
for _, dead in ipairs(gone) do
  local held = prefix .. 'held\\0' .. dead
  for _, entry in ipairs(redis.call('SMEMBERS', held)) do
    down(prefix, due, dead, entry, now, delay)
  end
  redis.call('DEL', held)
  redis.call('ZREM', alive, dead)
end
return back
`;

/** KEYS: lease. ARGV: node, ttl ms. 1 while this node holds (or just took) the lease. */
const LEASE_SCRIPT = `
local holder = redis.call('GET', KEYS[1])
if holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`;

/** KEYS: stream. ARGV: group, ids... Delivered: acknowledged and deleted (the stream holds only what is pending). */
const DONE_SCRIPT = `
redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 2))
return redis.call('XDEL', KEYS[1], unpack(ARGV, 2))
`;

const GROUP = 'deliver';

type StreamEntry = [id: string, fields: string[] | null];
type Client = Redis | Cluster;

/** Webhook occupancy and events in Redis, shared by every node. */
export class RedisWebhookStore implements WebhookStore {
  private readonly prefix: string;
  private readonly enabled: string;
  private readonly leaseMs: number;
  private groupReady = false;
  private leading = false;

  constructor(
    private readonly redis: Client,
    keyPrefix: string,
    private readonly node: string,
    private readonly settings: WebhookStoreSettings,
  ) {
    this.prefix = `${keyPrefix}:{wh}:`;
    this.enabled = WEBHOOK_EVENTS.map((name) => (settings.events.has(name) ? '1' : '0')).join('');
    // Long enough to outlive a slow delivery (renewed before each batch), short enough that a
    // dead deliverer is replaced soon.
    this.leaseMs = Math.max(2 * settings.timeoutMs, Math.min(settings.nodeTimeoutMs, 15_000));
  }

  private key(name: string): string {
    return this.prefix + name;
  }

  async apply(edges: readonly LocalEdge[]): Promise<StoreOutcome> {
    if (edges.length === 0) return { dropped: 0 };
    const args: Array<string | number> = [];
    for (const e of edges)
      args.push(
        e.kind === 'channel' ? 'c' : 'm',
        e.edge === 'up' ? 'u' : 'd',
        e.channel,
        e.userId ?? '',
        e.at,
      );
    const dropped = await this.redis.eval(
      APPLY_SCRIPT,
      3,
      this.key('due'),
      this.key('events'),
      this.key(`held\0${this.node}`),
      this.prefix,
      this.node,
      this.settings.vacateDelayMs,
      this.settings.maxPending,
      this.enabled,
      edges.length,
      ...args,
    );
    return { dropped: Number(dropped) };
  }

  async fireDue(now: number): Promise<StoreOutcome> {
    const dropped = await this.redis.eval(
      DUE_SCRIPT,
      2,
      this.key('due'),
      this.key('events'),
      this.prefix,
      now,
      this.settings.vacateDelayMs,
      this.settings.maxPending,
      this.enabled,
      500,
    );
    return { dropped: Number(dropped) };
  }

  async heartbeat(now: number): Promise<StoreOutcome> {
    return { dropped: 0, restated: (await this.beat(now, false)) === 1 };
  }

  async leave(now: number): Promise<StoreOutcome> {
    await this.beat(now, true);
    if (this.leading)
      await this.redis.eval(
        `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`,
        1,
        this.key('lease'),
        this.node,
      );
    this.leading = false;
    return { dropped: 0 };
  }

  private async beat(now: number, leaving: boolean): Promise<number> {
    const back = await this.redis.eval(
      HEARTBEAT_SCRIPT,
      2,
      this.key('alive'),
      this.key('due'),
      this.prefix,
      this.node,
      now,
      this.settings.nodeTimeoutMs,
      this.settings.vacateDelayMs,
      leaving ? '1' : '0',
    );
    return Number(back);
  }

  async lead(): Promise<boolean> {
    const held = Number(
      await this.redis.eval(LEASE_SCRIPT, 1, this.key('lease'), this.node, this.leaseMs),
    );
    const leading = held === 1;
    if (leading && !this.leading) {
      await this.ensureGroup();
      // Taking over: what a previous deliverer read and never confirmed is ours now, and goes
      // first (it is older than anything not read yet).
      let cursor = '0-0';
      do {
        const claimed = (await this.redis.xautoclaim(
          this.key('events'),
          GROUP,
          this.node,
          0,
          cursor,
          'COUNT',
          1000,
        )) as [string, StreamEntry[], string[]?];
        cursor = claimed[0];
      } while (cursor !== '0-0');
    }
    this.leading = leading;
    return leading;
  }

  async next(max: number): Promise<WebhookEvent[]> {
    await this.ensureGroup();
    // Ours and unconfirmed first (a failed delivery is retried with the same events), then new.
    let entries = await this.read(max, '0');
    if (entries.length === 0) entries = await this.read(max, '>');
    const events: WebhookEvent[] = [];
    const vanished: string[] = [];
    for (const [id, fields] of entries) {
      const event = fields ? eventOf(id, fields) : undefined;
      if (event) events.push(event);
      else vanished.push(id); // dropped for the bound after it was read: nothing to send
    }
    if (vanished.length > 0) await this.done(vanished);
    return events;
  }

  private async read(max: number, from: '0' | '>'): Promise<StreamEntry[]> {
    const answer = await this.redis.xreadgroup(
      'GROUP',
      GROUP,
      this.node,
      'COUNT',
      max,
      'STREAMS',
      this.key('events'),
      from,
    );
    return answer?.[0]?.[1] ?? [];
  }

  async done(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.redis.eval(DONE_SCRIPT, 1, this.key('events'), GROUP, ...ids);
  }

  async pending(): Promise<number> {
    return this.redis.xlen(this.key('events'));
  }

  private async ensureGroup(): Promise<void> {
    if (this.groupReady) return;
    try {
      // From the start of the stream: events queued while no node delivered are sent too.
      await this.redis.xgroup('CREATE', this.key('events'), GROUP, '0', 'MKSTREAM');
    } catch (err) {
      if (!String((err as Error).message).includes('BUSYGROUP')) throw err;
    }
    this.groupReady = true;
  }
}

/** A stream entry as an event; undefined for an entry that is not one. */
function eventOf(id: string, fields: string[]): WebhookEvent | undefined {
  const f = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) f.set(fields[i]!, fields[i + 1]!);
  const name = f.get('n') as WebhookEventName | undefined;
  const channel = f.get('c');
  if (!name || !WEBHOOK_EVENTS.includes(name) || channel === undefined) return undefined;
  const event: WebhookEvent = { id, name, channel, ts: Number(f.get('t')) };
  const user = f.get('u');
  if (user !== undefined) event.userId = user;
  return event;
}
