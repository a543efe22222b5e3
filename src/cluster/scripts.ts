/**
 * Lua scripts run by Redis. Scripts run one at a time, so a channel's offset, its history entry and
 * its publish happen as one step: every node receives a channel's messages in offset order, even
 * when several nodes publish to it at once (the design follows Centrifuge's Redis broker).
 */

/**
 * Append and publish. KEYS: meta hash, stream. ARGV: shard channel, message head, history size
 * (0 = off), TTL seconds, epoch for a new history, 's' (SPUBLISH) or 'p' (PUBLISH), envelope
 * head, envelope tail, deadline (ms, Redis clock). Returns the offset, or '' when history is off.
 *
 * The deadline: a publish whose client already gave up (command timeout, answered 503 "nothing
 * was pushed") may still be queued in Redis, e.g. behind a stall; past its deadline it does
 * nothing, so a 503 stays true and a retry with the same Idempotency-Key pushes only once.
 */
export const PUBLISH_SCRIPT = `
local clock = redis.call('TIME')
if tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000) > tonumber(ARGV[9]) then
  return redis.error_reply('PUSHCAST_EXPIRED publish deadline passed')
end
local size = tonumber(ARGV[3])
local body
local offset = ''
if size > 0 then
  local ttl = tonumber(ARGV[4])
  local epoch = redis.call('HGET', KEYS[1], 'e')
  if not epoch then
    epoch = ARGV[5]
    redis.call('HSET', KEYS[1], 'e', epoch)
  end
  local n = redis.call('HINCRBY', KEYS[1], 's', 1)
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', size, n .. '-0', 'm', ARGV[2])
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
  offset = epoch .. ':' .. n
  body = ARGV[2] .. ',"offset":"' .. offset .. '"}'
else
  body = ARGV[2] .. '}'
end
local envelope = ARGV[7] .. body .. ARGV[8]
if ARGV[6] == 's' then
  redis.call('SPUBLISH', ARGV[1], envelope)
else
  redis.call('PUBLISH', ARGV[1], envelope)
end
return offset
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
 * Read history. KEYS: meta hash, stream. ARGV: since n (-1: the newest), limit. Returns
 * { epoch or '', top n, entries, id of the oldest entry or '' }; entries are [id, [field, value]].
 */
export const HISTORY_SCRIPT = `
local meta = redis.call('HMGET', KEYS[1], 'e', 's')
if not meta[1] then
  return {'', 0, {}, ''}
end
local since = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local entries
if limit <= 0 then
  entries = {}
elseif since < 0 then
  entries = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', limit)
else
  entries = redis.call('XRANGE', KEYS[2], (since + 1) .. '-0', '+', 'COUNT', limit)
end
local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
local oldestId = ''
if oldest[1] then
  oldestId = oldest[1][1]
end
return {meta[1], tonumber(meta[2]) or 0, entries, oldestId}
`;
