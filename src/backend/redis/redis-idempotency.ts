import type { Cluster, Redis } from 'ioredis';
import {
  CLAIM_TTL_S,
  type IdempotencyKey,
  type IdempotencyState,
  type IdempotencyStore,
  type StoredResponse,
} from '../../delivery/idempotency.js';

/**
 * One step in Redis per `begin`: claim a new key (counting it against its owner's cap), or read
 * the stored entry, and take over a partial answer. Entry format: `<state>|<fingerprint>|<json>`
 * with state `p` (claimed), `d` (done), `r` (partial, resumable). The key and the owner's index
 * share the owner's hash tag, so the script runs on one Redis Cluster slot.
 */
const BEGIN_SCRIPT = `
local v = redis.call('GET', KEYS[1])
if not v then
  local now = tonumber(ARGV[3])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return {'full'} end
  redis.call('SET', KEYS[1], 'p|' .. ARGV[1] .. '|', 'EX', ARGV[2])
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[5]) * 1000, KEYS[1])
  redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[5]) * 1000)
  return {'new'}
end
local state = string.sub(v, 1, 1)
local fp = ARGV[1]
-- Compared by its own length: a fingerprint may hold any character, '|' included.
if string.sub(v, 3, 2 + #fp) ~= fp or string.sub(v, 3 + #fp, 3 + #fp) ~= '|' then
  return {'mismatch'}
end
local json = string.sub(v, 4 + #fp)
if state == 'p' then return {'busy'} end
if state == 'd' then return {'done', json} end
redis.call('SET', KEYS[1], 'p' .. string.sub(v, 2), 'EX', ARGV[2])
return {'resume', json}
`;

/** Gives a claim up: back to its partial answer if it holds one, else forgotten. */
const ABORT_SCRIPT = `
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
-- A claim with a partial answer ends in its JSON; a bare claim ends with the separator.
if string.sub(v, 1, 1) == 'p' and string.sub(v, -1) ~= '|' then
  redis.call('SET', KEYS[1], 'r' .. string.sub(v, 2), 'EX', ARGV[1])
  return 1
end
if string.sub(v, 1, 1) == 'p' then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], KEYS[1])
end
return 0
`;

/** Idempotency shared by the cluster, in Redis, with a cap on the keys one API key may hold. */
export class RedisIdempotencyStore implements IdempotencyStore {
  constructor(
    private readonly redis: Redis | Cluster,
    private readonly prefix: string,
    private readonly ttlS: number,
    /** Idempotency keys one API key may hold at once (within the TTL). */
    private readonly maxKeysPerOwner: number,
  ) {}

  async begin(key: IdempotencyKey, fingerprint: string): Promise<IdempotencyState> {
    const [k, index] = this.keys(key);
    const answer = (await this.redis.eval(
      BEGIN_SCRIPT,
      2,
      k,
      index,
      fingerprint,
      CLAIM_TTL_S,
      Date.now(),
      this.maxKeysPerOwner,
      this.ttlS,
    )) as [string, string?];
    const [state, json] = answer;
    if (state === 'done' || state === 'resume')
      return { state, response: JSON.parse(json!) as StoredResponse };
    return { state: state as 'new' | 'busy' | 'mismatch' | 'full' };
  }

  async complete(
    key: IdempotencyKey,
    fingerprint: string,
    response: StoredResponse,
    final: boolean,
  ): Promise<void> {
    const entry = `${final ? 'd' : 'r'}|${fingerprint}|${JSON.stringify(response)}`;
    await this.redis.set(this.keys(key)[0], entry, 'EX', this.ttlS);
  }

  async abort(key: IdempotencyKey): Promise<void> {
    const [k, index] = this.keys(key);
    await this.redis.eval(ABORT_SCRIPT, 2, k, index, this.ttlS);
  }

  private keys(key: IdempotencyKey): [string, string] {
    const tag = `{idem:${encodeURIComponent(key.owner)}}`;
    return [`${this.prefix}:${tag}:${key.key}`, `${this.prefix}:${tag}:index`];
  }
}
