/**
 * Lua scripts run by Redis. Scripts run one at a time, so a channel's offset, its history entry and
 * its publish happen as one step: every node receives a channel's messages in offset order, even
 * when several nodes publish to it at once (the design follows Centrifuge's Redis broker).
 */

/**
 * Append and publish one push to each of its channels, all in one step. KEYS per channel: meta
 * hash and stream, and (with `dedupe`) its set of recent push ids. ARGV: deadline (ms, Redis
 * clock), 's' (SPUBLISH) or 'p' (PUBLISH), dedupe ('1' or '0'), the most ids a channel keeps,
 * then per channel: adapter channel, message head, history size (0 = off), TTL seconds, epoch for
 * a new history, envelope head, envelope tail, push id. Returns the offsets, '' where history is
 * off, '=' where the channel already holds the push (dedupe).
 *
 * One Redis: one script for all channels, so a multi-channel push is published everywhere or
 * nowhere and a 503 always means "nothing was pushed". A Redis Cluster runs one script per hash
 * slot (a script may only touch one slot's keys and shard channels), so a push to channels on
 * several shards can reach some of them and fail on others: there each channel keeps the ids
 * it took for its TTL (at most the given number of them), and refuses an id it already holds, so
 * a retry with the same push id completes the push on the channels that missed it and delivers
 * nothing twice on the others.
 *
 * The deadline: a publish whose client already gave up (command timeout, answered 503) may still
 * be queued in Redis, e.g. behind a stall; past its deadline it does nothing, so the 503 stays
 * true and a retry with the same Idempotency-Key pushes only once.
 */
export const PUBLISH_SCRIPT = `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
if now > tonumber(ARGV[1]) then
  return redis.error_reply('PUSHCAST_EXPIRED publish deadline passed')
end
local publish = 'PUBLISH'
if ARGV[2] == 's' then
  publish = 'SPUBLISH'
end
local dedupe = ARGV[3] == '1'
local keep = tonumber(ARGV[4])
local stride = 2
if dedupe then
  stride = 3
end
local offsets = {}
for i = 1, #KEYS / stride do
  local meta = KEYS[stride * (i - 1) + 1]
  local stream = KEYS[stride * (i - 1) + 2]
  local ids = KEYS[stride * (i - 1) + 3]
  local a = 4 + (i - 1) * 8
  local head = ARGV[a + 2]
  local size = tonumber(ARGV[a + 3])
  local ttl = tonumber(ARGV[a + 4])
  local id = ARGV[a + 8]
  if dedupe and redis.call('ZSCORE', ids, id) then
    offsets[i] = '='
  else
    local body
    local offset = ''
    if size > 0 then
      local epoch = redis.call('HGET', meta, 'e')
      if not epoch then
        epoch = ARGV[a + 5]
        redis.call('HSET', meta, 'e', epoch)
      end
      -- As digits: Lua writes numbers from 1e14 on as "1e+14", which is no stream id.
      local n = string.format('%d', redis.call('HINCRBY', meta, 's', 1))
      redis.call('XADD', stream, 'MAXLEN', '~', size, n .. '-0', 'm', head)
      redis.call('EXPIRE', meta, ttl)
      redis.call('EXPIRE', stream, ttl)
      offset = epoch .. ':' .. n
      body = head .. ',"offset":"' .. offset .. '"}'
    else
      body = head .. '}'
    end
    redis.call(publish, ARGV[a + 1], ARGV[a + 6] .. body .. ARGV[a + 7])
    if dedupe then
      redis.call('ZADD', ids, now, id)
      redis.call('ZREMRANGEBYSCORE', ids, '-inf', now - ttl * 1000)
      if redis.call('ZCARD', ids) > keep then
        redis.call('ZREMRANGEBYRANK', ids, 0, -keep - 1)
      end
      redis.call('EXPIRE', ids, ttl)
    end
    offsets[i] = offset
  end
end
return offsets
`;

/**
 * Current position. KEYS: meta hash. ARGV: epoch for a new history, TTL seconds. Starts the
 * history at 0 (with its epoch) if the channel has none. Returns { epoch, n }.
 */
export const POSITION_SCRIPT = `
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'e', epoch)
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
end
local n = redis.call('HGET', KEYS[1], 's')
if not n then
  n = 0
end
return {epoch, tonumber(n)}
`;

/**
 * Read history. KEYS: meta hash, stream. ARGV: since n as decimal digits (-1: the newest), limit.
 * Returns { epoch or '', top n, entries, id of the oldest entry or '' }; entries are
 * [id, [field, value]]. Entries are read only after a `since` below the top (one at or past it
 * has none), and `since` goes into the stream id as the digits it came as: Lua formats numbers
 * from 1e14 on as "1e+14", which is no stream id.
 */
export const HISTORY_SCRIPT = `
local meta = redis.call('HMGET', KEYS[1], 'e', 's')
if not meta[1] then
  return {'', 0, {}, ''}
end
local top = tonumber(meta[2]) or 0
local since = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local entries
if limit <= 0 or since >= top then
  entries = {}
elseif since < 0 then
  entries = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', limit)
else
  -- Ids are n-0: from since-1 on is after since-0 (exclusive ranges need Redis 6.2).
  entries = redis.call('XRANGE', KEYS[2], ARGV[1] .. '-1', '+', 'COUNT', limit)
end
local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
local oldestId = ''
if oldest[1] then
  oldestId = oldest[1][1]
end
return {meta[1], top, entries, oldestId}
`;
