import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hooks } from '../../src/auth/hooks.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { subscriber } from '../support/assertions.js';
import { disconnectUser, post, unsubscribeUser, type ApiAnswer } from '../support/control.js';
import { API_KEY, startNode, type TestClient, type TestNode } from '../support/nodes.js';

/**
 * Who may use the control API (README "API keys: what each one may do"): scope `control`, which
 * `admin` includes; a channel-limited key only unsubscribes on its channels and never disconnects
 * users. And what it answers to requests it cannot take (422, 415, 400), in the contract's order.
 */

const KEYS = {
  /** Full access: no scopes named (push, read, admin). */
  full: API_KEY,
  push: 'control-push-only-key-0123456789',
  read: 'control-read-only-key-0123456789',
  /** Limited to invoice channels, no scopes named: push and read. */
  invoices: 'control-invoices-key-0123456789',
  /** Limited to invoice channels, naming admin. */
  invoicesAdmin: 'control-invoices-admin-key-0123456789',
  /** Scope control alone (from the hooks module). */
  control: 'control-scope-key-0123456789abcdef',
  /** Scope control, limited to invoice channels (from the hooks module). */
  invoicesControl: 'control-scope-invoices-key-0123456789',
  /** Scope control, from the settings (`apiKeys[].scopes`). */
  configControl: 'control-scope-config-key-0123456789',
};

const apiKeys: NonNullable<ConfigInput['apiKeys']> = [
  { key: KEYS.full, id: 'full' },
  { key: KEYS.push, id: 'push', scopes: ['push'] },
  { key: KEYS.read, id: 'read', scopes: ['read'] },
  { key: KEYS.invoices, id: 'invoices', channels: ['invoice:*'] },
  { key: KEYS.invoicesAdmin, id: 'invoices-admin', channels: ['invoice:*'], scopes: ['admin'] },
  { key: KEYS.configControl, id: 'config-control', scopes: ['control'] },
];

/** Keys with the `control` scope come from the settings and from a hooks module (`authenticateApi`). */
const hooks: Hooks = {
  authenticateApi(request, defaults) {
    const header = request.headers.authorization;
    if (header === `Bearer ${KEYS.control}`)
      return Promise.resolve({ keyId: 'control', scopes: ['control'] });
    if (header === `Bearer ${KEYS.invoicesControl}`)
      return Promise.resolve({
        keyId: 'invoices-control',
        scopes: ['control'],
        channels: ['invoice:*'],
      });
    return defaults.authenticateApi(request);
  },
};

const outcome = (a: ApiAnswer) => ({
  status: a.status,
  code: a.body.code,
  details: a.body.details,
});

describe('control API: keys and scopes', () => {
  let node: TestNode;
  let client: TestClient;
  beforeAll(async () => {
    node = await startNode({ apiKeys }, hooks);
    // The user the keys act on (nobody is disconnected by these requests: they use other ids).
    client = await subscriber(node, ['invoice:1', 'user:1']);
  });
  afterAll(async () => {
    client.close();
    await node?.stop();
  });

  it('answers 401 without a key or with an unknown one', async () => {
    for (const key of [null, 'no-such-key-0123456789abcdef']) {
      const d = await post(node, '/api/users/x/disconnect', undefined, key);
      const u = await post(node, '/api/channels/a/unsubscribe', '{"userId":"x"}', key);
      for (const a of [d, u]) {
        expect(outcome(a)).toMatchObject({ status: 401, code: 'unauthorized' });
        expect(a.headers.get('www-authenticate')).toBe('Bearer realm="pushcast"');
      }
    }
  });

  it('answers 403 to keys without control or admin, naming the scope', async () => {
    for (const key of [KEYS.push, KEYS.read, KEYS.invoices]) {
      expect(outcome(await disconnectUser(node, 'x', key))).toEqual({
        status: 403,
        code: 'forbidden',
        details: { scope: 'control' },
      });
      expect(outcome(await unsubscribeUser(node, 'invoice:1', 'x', key))).toEqual({
        status: 403,
        code: 'forbidden',
        details: { scope: 'control' },
      });
    }
  });

  it('lets admin keys and control keys act', async () => {
    for (const key of [KEYS.full, KEYS.control, KEYS.configControl]) {
      expect(await disconnectUser(node, 'nobody', key)).toMatchObject({
        status: 200,
        body: { disconnected: 0 },
      });
      expect(await unsubscribeUser(node, 'user:1', 'nobody', key)).toMatchObject({
        status: 200,
        body: { unsubscribed: 0 },
      });
    }
    // The control scope is that and nothing more.
    const stats = await fetch(`${node.url}/api/stats`, {
      headers: { authorization: `Bearer ${KEYS.control}` },
    });
    expect(stats.status).toBe(403);
  });

  it('holds channel-limited keys to their channels, and never lets them disconnect a user', async () => {
    for (const key of [KEYS.invoicesAdmin, KEYS.invoicesControl]) {
      expect(await unsubscribeUser(node, 'invoice:1', 'nobody', key)).toMatchObject({
        status: 200,
        body: { unsubscribed: 0 },
      });
      expect(outcome(await unsubscribeUser(node, 'user:1', 'nobody', key))).toEqual({
        status: 403,
        code: 'forbidden',
        details: { channel: 'user:1' },
      });
      // A user's connections hold channels outside the key's patterns.
      expect(outcome(await disconnectUser(node, 'nobody', key))).toEqual({
        status: 403,
        code: 'forbidden',
        details: { scope: 'cluster' },
      });
    }
    // The user they tried on is still there.
    expect(client.socket.connected).toBe(true);
  });
});

describe('control API: requests it cannot take', () => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startNode({ apiKeys }, hooks);
  });
  afterAll(async () => node?.stop());
  const unsubscribe = (body: string | undefined, headers: Record<string, string> = {}) =>
    post(node, '/api/channels/ok:1/unsubscribe', body, API_KEY, headers);

  it('answers 422 invalid_request naming the field: channel, userId, the body', async () => {
    const cases: Array<[Promise<ApiAnswer>, string]> = [
      [unsubscribeUser(node, 'bad channel', 'x'), 'channel'],
      [unsubscribeUser(node, 'x'.repeat(201), 'x'), 'channel'],
      [unsubscribe('{}'), 'userId'],
      [unsubscribeUser(node, 'ok:1', 5), 'userId'],
      [unsubscribeUser(node, 'ok:1', ''), 'userId'],
      [unsubscribeUser(node, 'ok:1', 'u'.repeat(1001)), 'userId'],
      [unsubscribe('["x"]'), 'body'],
      [disconnectUser(node, 'u'.repeat(1001)), 'userId'],
      [post(node, '/api/users/%E0%A4%A/disconnect', undefined), 'path'],
    ];
    for (const [answer, field] of cases)
      expect(outcome(await answer)).toMatchObject({
        status: 422,
        code: 'invalid_request',
        details: { field },
      });
    // The longest user id there is, and any character in it, is fine.
    const long = 'ü/ %'.repeat(250);
    expect((await disconnectUser(node, long)).body).toEqual({ disconnected: 0 });
    expect((await unsubscribeUser(node, 'ok:1', long)).body).toEqual({ unsubscribed: 0 });
  });

  it('answers 415 to a body that is not JSON, 400 to none or a broken one, 413 past 16 KiB', async () => {
    expect(outcome(await unsubscribe('userId=x', { 'content-type': 'text/plain' }))).toMatchObject({
      status: 415,
      code: 'unsupported_media_type',
    });
    expect(outcome(await unsubscribe(undefined))).toMatchObject({
      status: 415,
      code: 'unsupported_media_type',
    });
    expect(
      outcome(await unsubscribe(undefined, { 'content-type': 'application/json' })),
    ).toMatchObject({ status: 400, code: 'invalid_json' });
    expect(outcome(await unsubscribe('{"userId":'))).toMatchObject({
      status: 400,
      code: 'invalid_json',
    });
    expect(
      outcome(await unsubscribe(JSON.stringify({ userId: 'x'.repeat(20_000) }))),
    ).toMatchObject({ status: 413, code: 'payload_too_large' });
  });

  it('checks the scope before the input, and the input before the channel limits', async () => {
    // A key without the scope learns nothing about its input.
    expect(outcome(await unsubscribeUser(node, 'bad channel', 5, KEYS.push))).toMatchObject({
      status: 403,
      details: { scope: 'control' },
    });
    // A channel-limited control key: a bad body on another channel is a 422 first.
    expect(outcome(await unsubscribeUser(node, 'user:1', 5, KEYS.invoicesControl))).toMatchObject({
      status: 422,
      details: { field: 'userId' },
    });
    // A channel-limited key may not disconnect, whatever the user id.
    expect(
      outcome(await disconnectUser(node, 'u'.repeat(1001), KEYS.invoicesControl)),
    ).toMatchObject({ status: 403, details: { scope: 'cluster' } });
  });

  it('serves the actions as POST only', async () => {
    for (const path of ['/api/users/x/disconnect', '/api/channels/a/unsubscribe']) {
      const res = await fetch(`${node.url}${path}`, {
        headers: { authorization: `Bearer ${API_KEY}` },
      });
      expect(res.status, path).toBe(404);
    }
  });
});
