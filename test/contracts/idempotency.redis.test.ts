import { beforeAll, describe, it } from 'vitest';
import { RedisIdempotencyStore } from '../../src/backend/redis/redis-idempotency.js';
import { eventually } from '../support/contracts.js';
import { useRedis } from '../support/redis.js';
import { CONTRACT_TTL_S, idempotencyContract, LONG_TTL_S } from './idempotency.contract.js';

const redis = useRedis();

const prefix = (): string => `ct${Math.random().toString(36).slice(2, 10)}`;

idempotencyContract('redis', (ttlS) =>
  Promise.resolve({
    store: new RedisIdempotencyStore(redis.clients.pub, prefix(), ttlS, 1_000_000),
    close: () => Promise.resolve(),
  }),
);

/** Redis only: the cap on the keys one owner (API key) may hold at once. */
describe.concurrent('IdempotencyStore (redis): the per-owner cap', () => {
  const CAP = 2;
  let store: RedisIdempotencyStore;
  beforeAll(() => {
    store = new RedisIdempotencyStore(redis.clients.pub, prefix(), LONG_TTL_S, CAP);
  });
  const k = (owner: string, key: string) => ({ owner, key });

  it('answers full for a new key once the owner holds maxKeysPerOwner keys, and only then', async ({
    expect,
  }) => {
    expect(await store.begin(k('o1', 'a'), 'f')).toEqual({ state: 'new' });
    await store.complete(k('o1', 'a'), 'f', { status: 200, body: 'a' }, true);
    expect(await store.begin(k('o1', 'b'), 'f')).toEqual({ state: 'new' });
    expect(await store.begin(k('o1', 'c'), 'f')).toEqual({ state: 'full' });
    // Keys it holds are still answered; other owners are not affected.
    expect(await store.begin(k('o1', 'a'), 'f')).toEqual({
      state: 'done',
      response: { status: 200, body: 'a' },
    });
    expect(await store.begin(k('o1', 'b'), 'f')).toEqual({ state: 'busy' });
    expect(await store.begin(k('o1:x', 'c'), 'f')).toEqual({ state: 'new' });
    expect(await store.begin(k('o2', 'c'), 'f')).toEqual({ state: 'new' });
  });

  it('frees a place when a new claim is given up on abort', async ({ expect }) => {
    await store.begin(k('o3', 'a'), 'f');
    await store.begin(k('o3', 'b'), 'f');
    expect((await store.begin(k('o3', 'c'), 'f')).state).toBe('full');
    await store.abort(k('o3', 'b'));
    expect(await store.begin(k('o3', 'c'), 'f')).toEqual({ state: 'new' });
  });

  it('frees the places once the held keys expire', async ({ expect }) => {
    const store = new RedisIdempotencyStore(redis.clients.pub, prefix(), CONTRACT_TTL_S, CAP);
    const started = Date.now();
    for (const key of ['a', 'b']) {
      await store.begin(k('o4', key), 'f');
      await store.complete(k('o4', key), 'f', { status: 200, body: key }, true);
    }
    const early = await store.begin(k('o4', 'c'), 'f');
    // (Unless the machine was so slow that the keys already expired.)
    if (Date.now() - started < CONTRACT_TTL_S * 1000 - 10) expect(early.state).toBe('full');
    await eventually(
      async () => (await store.begin(k('o4', 'c'), 'f')).state === 'new',
      CONTRACT_TTL_S * 1000 + 5000,
      'the held keys to expire',
    );
  });
});
