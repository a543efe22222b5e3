import { expect } from 'vitest';
import { connectClient, postJson, token, type TestClient, type TestNode } from './nodes.js';

/** A socket client on `node` joined to `channels`. */
export async function subscriber(node: TestNode, channels: string[]): Promise<TestClient> {
  const client = await connectClient(node.url, { token: await token({ sub: 'u', channels }) });
  for (const channel of channels) expect(await client.join(channel)).toMatchObject({ ok: true });
  return client;
}

/**
 * Asserts `client` got exactly `expected` messages so far: pushes a sentinel on `channel` and
 * waits for it, so anything pushed before it has arrived (one node, one channel: in order). Takes
 * a TestClient or anything else that collects the messages it receives (an SDK subscription).
 */
export async function expectExactly(
  node: Pick<TestNode, 'url'>,
  client: { messages: ReadonlyArray<{ id: string }> },
  channel: string,
  expected: number,
  timeoutMs = 5000,
): Promise<void> {
  const sentinel = await postJson(`${node.url}/api/push`, { channel, event: 'sentinel', data: 0 });
  expect(sentinel.status).toBe(200);
  const { messages } = client;
  await until(
    () => messages.some((m) => m.id === sentinel.body.id),
    timeoutMs,
    `the sentinel on ${channel} (${expected} messages expected before it)`,
  );
  expect(messages[messages.length - 1]!.id).toBe(sentinel.body.id);
  expect(messages).toHaveLength(expected + 1);
}

/** What `until` resolves with: the first result of the check that is not falsy. */
export type Truthy<T> = Exclude<T, false | 0 | '' | null | undefined>;

/**
 * The one way tests wait: polls `check` (sync or async) every 20 ms until it returns something
 * truthy, and resolves with that; rejects after `timeoutMs` naming `what`. A check that throws
 * ends the wait with its error.
 */
export async function until<T>(
  check: () => T | Promise<T>,
  timeoutMs: number,
  what: string,
): Promise<Truthy<T>> {
  const started = Date.now();
  for (;;) {
    const value = await check();
    if (value) return value as Truthy<T>;
    if (Date.now() - started > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
