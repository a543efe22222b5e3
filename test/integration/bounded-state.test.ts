import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryIdempotencyStore } from '../../src/backend/memory/memory-idempotency.js';
import { expectExactly, subscriber } from '../support/assertions.js';
import { useRedisCluster } from '../support/cluster.js';
import {
  API_KEY,
  connectClient,
  postJson,
  startNode,
  token,
  type TestNode,
} from '../support/nodes.js';

// What any API key can make a node keep is bounded: history and idempotency answers by bytes in
// memory mode, idempotency keys per API key in Redis mode; and a batch whose slots failed with a
// retryable error is never stored as final, so the retry the contract asks for can succeed.

const big = (n: number): string => 'x'.repeat(n);

describe('memory mode: history is bounded by bytes, least recently pushed channels go first', () => {
  let node: TestNode;
  beforeAll(async () => {
    // 100 KB for all history: a handful of 20 KB messages.
    node = await startNode({ memory: { historyMb: 0.1 } });
  });
  afterAll(async () => {
    await node.stop();
  });

  it('drops the oldest channels whole, and a client resuming one of them gets recovered: false', async () => {
    const offsets: string[] = [];
    for (let i = 0; i < 12; i++) {
      const res = await postJson(`${node.url}/api/push`, {
        channel: `bounded:${i}`,
        event: 'e',
        data: big(20_000),
      });
      expect(res.status).toBe(200);
      const history = await fetch(`${node.url}/api/channels/bounded:${i}/history`, {
        headers: { authorization: `Bearer ${API_KEY}` },
      });
      offsets.push(((await history.json()) as { offset: string }).offset);
    }
    const read = async (i: number) =>
      (await (
        await fetch(`${node.url}/api/channels/bounded:${i}/history`, {
          headers: { authorization: `Bearer ${API_KEY}` },
        })
      ).json()) as { messages: unknown[] };
    expect((await read(0)).messages).toHaveLength(0);
    expect((await read(11)).messages).toHaveLength(1);
    const client = await connectClient(node.url, {
      token: await token({ sub: 'u', channels: ['bounded:*'] }),
    });
    try {
      const before = offsets[0]!.replace(/:\d+$/, ':0');
      expect(await client.join('bounded:0', { since: before })).toMatchObject({
        ok: true,
        recovered: false,
      });
      const recent = offsets[11]!.replace(/:\d+$/, ':0');
      expect(await client.join('bounded:11', { since: recent })).toMatchObject({
        ok: true,
        recovered: true,
        missed: 1,
      });
    } finally {
      client.close();
    }
  });
});

describe('memory mode: idempotency answers are bounded by bytes and keep only what a replay needs', () => {
  let node: TestNode;
  beforeAll(async () => {
    // 10 KB for every stored answer together.
    node = await startNode({ memory: { idempotencyMb: 0.01 } });
  });
  afterAll(async () => {
    await node.stop();
  });

  it('replays a 60 KB push from an entry of a few bytes, then forgets the oldest keys past the bound', async () => {
    const body = (i: number) => ({
      channel: 'idem:big',
      event: 'e',
      data: { i, pad: big(60_000) },
    });
    const first = await postJson(`${node.url}/api/push`, body(0), { 'idempotency-key': 'k0' });
    expect(first.status).toBe(200);
    // Nineteen more 60 KB pushes: if answers were stored whole, k0 would be gone already.
    for (let i = 1; i < 20; i++)
      expect(
        (await postJson(`${node.url}/api/push`, body(i), { 'idempotency-key': `k${i}` })).status,
      ).toBe(200);
    const replay = await postJson(`${node.url}/api/push`, body(0), { 'idempotency-key': 'k0' });
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(replay.body).toEqual(first.body);
    // Many more keys: the bound now forgets k0 (a retry this late pushes again, as after the TTL).
    for (let i = 0; i < 200; i++)
      await postJson(
        `${node.url}/api/push`,
        { channel: 'idem:small', event: 'e', data: i },
        { 'idempotency-key': `small-${i}` },
      );
    const late = await postJson(`${node.url}/api/push`, body(0), { 'idempotency-key': 'k0' });
    expect(late.status).toBe(200);
    expect(late.headers.get('idempotent-replayed')).toBeNull();
    expect(late.body.id).not.toBe(first.body.id);
  });

  it('store: evicts the oldest answers by bytes and never the one just stored', async () => {
    let now = 0;
    const store = new MemoryIdempotencyStore(60, 600, () => now);
    for (let i = 0; i < 10; i++) {
      const key = { owner: 'o', key: `k${i}` };
      expect(await store.begin(key, 'f')).toEqual({ state: 'new' });
      await store.complete(key, 'f', { status: 200, body: big(100) }, true);
      now += 1;
    }
    expect(store.heldBytes).toBeLessThanOrEqual(600);
    expect((await store.begin({ owner: 'o', key: 'k9' }, 'f')).state).toBe('done');
    expect((await store.begin({ owner: 'o', key: 'k0' }, 'f')).state).toBe('new');
  });
});

/** A batch of three on a node that takes one push at a time: slots 2 and 3 meet a full pipeline. */
async function batchRetries(node: TestNode): Promise<void> {
  const client = await subscriber(node, ['retry:b']);
  try {
    const pushes = [1, 2, 3].map((n) => ({ channel: 'retry:b', event: 'e', data: n }));
    const url = `${node.url}/api/push/batch`;
    const headers = { 'idempotency-key': 'batch-retry-1' };
    const first = await postJson(url, { pushes }, headers);
    expect(first.status).toBe(200);
    const codes = (r: typeof first) =>
      (r.body.results as Array<{ code?: string }>).map((s) => s.code ?? 'ok');
    expect(codes(first)).toEqual(['ok', 'unavailable', 'unavailable']);
    const ids = new Map<number, string>();
    let answer = first;
    for (let attempt = 0; attempt < 5 && codes(answer).includes('unavailable'); attempt++) {
      (answer.body.results as Array<{ id?: string }>).forEach((s, i) => {
        if (!s.id) return;
        // A slot published once keeps its id on every retry: it is not published again.
        expect(ids.get(i) ?? s.id).toBe(s.id);
        ids.set(i, s.id);
      });
      answer = await postJson(url, { pushes }, headers);
      expect(answer.status).toBe(200);
    }
    expect(codes(answer)).toEqual(['ok', 'ok', 'ok']);
    const replay = await postJson(url, { pushes }, headers);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(replay.body).toEqual(answer.body);
    // Exactly three deliveries: every push once, whatever the number of retries.
    await expectExactly(node, client, 'retry:b', 3);
    expect(client.messages.slice(0, 3).map((m) => m.data)).toEqual([1, 2, 3]);
  } finally {
    client.close();
  }
}

describe('a batch with retryable failures (memory)', () => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startNode({ maxInflight: 1 });
  });
  afterAll(async () => {
    await node.stop();
  });
  it('is not stored as final: a retry with the same key runs only the failed slots', async () => {
    await batchRetries(node);
  });
});

describe('a batch with retryable failures (Redis)', () => {
  const cluster = useRedisCluster({ nodes: 1, config: { maxInflight: 1 } });
  it('is not stored as final: a retry with the same key runs only the failed slots', async () => {
    await batchRetries(cluster.node);
  });
});

describe('Redis mode: Idempotency-Keys one API key may hold', () => {
  const cluster = useRedisCluster({ nodes: 2, config: { idempotencyKeysPerApiKey: 3 } });

  it('refuses a new key past the cap with 429 across nodes, while replays keep working', async () => {
    const push = (n: number, node: TestNode) =>
      postJson(
        `${node.url}/api/push`,
        { channel: 'cap:1', event: 'e', data: n },
        { 'idempotency-key': `cap-${n}` },
      );
    const [a, b] = cluster.nodes as [TestNode, TestNode];
    expect((await push(1, a)).status).toBe(200);
    expect((await push(2, b)).status).toBe(200);
    expect((await push(3, a)).status).toBe(200);
    const over = await push(4, b);
    expect({ status: over.status, code: over.body.code }).toEqual({
      status: 429,
      code: 'rate_limited',
    });
    expect(over.headers.get('retry-after')).not.toBeNull();
    const replay = await push(1, b);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    // A push without a key is not limited by the cap.
    expect(
      (await postJson(`${a.url}/api/push`, { channel: 'cap:1', event: 'e', data: 0 })).status,
    ).toBe(200);
  });
});
