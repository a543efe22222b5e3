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
 * waits for it, so anything pushed before it has arrived (one node, one channel: in order).
 */
export async function expectExactly(
  node: TestNode,
  client: TestClient,
  channel: string,
  expected: number,
): Promise<void> {
  const sentinel = await postJson(`${node.url}/api/push`, { channel, event: 'sentinel', data: 0 });
  expect(sentinel.status).toBe(200);
  await client.waitFor(expected + 1);
  const last = client.messages[client.messages.length - 1]!;
  expect(last.id).toBe(sentinel.body.id);
  expect(client.messages).toHaveLength(expected + 1);
}

/** Polls `check` every 20 ms until it holds; rejects after `timeoutMs` naming `what`. */
export function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const tick = (): void => {
      if (check()) return resolve();
      if (Date.now() - started > timeoutMs)
        return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 20);
    };
    tick();
  });
}
