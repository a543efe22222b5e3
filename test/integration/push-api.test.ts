import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY, postJson, startNode, type TestNode } from '../support/nodes.js';
import { expectExactly, subscriber } from '../support/assertions.js';

const ORDERS_KEY = 'orders-key-0123456789abcdef';
const OTHER_KEY = 'other-key-0123456789abcdef';
const READ_KEY = 'reader-key-0123456789abcdef';

const API_KEYS = [
  { key: API_KEY, id: 'test' },
  { key: ORDERS_KEY, id: 'orders', channels: ['orders:*'] },
  { key: OTHER_KEY, id: 'other' },
  { key: READ_KEY, id: 'reader', scopes: ['read' as const] },
];

interface Reply {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

/** Any request; the body is parsed as JSON (the test fails if an answer is not JSON). */
async function send(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string | Blob },
): Promise<Reply> {
  const res = await fetch(url, { method: init.method ?? 'POST', ...init });
  const text = await res.text();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new Error(`answer ${res.status} is not JSON: ${text.slice(0, 200)}`);
  }
  return { status: res.status, body, headers: res.headers };
}

/** Asserts the contract's error shape: exactly `{error, code, details?}`, JSON. */
function expectError(reply: Reply, status: number, code: string): void {
  expect({ status: reply.status, code: reply.body.code }).toEqual({ status, code });
  expect(reply.headers.get('content-type')).toMatch(/^application\/json\b/);
  expect(typeof reply.body.error).toBe('string');
  expect((reply.body.error as string).length).toBeGreaterThan(0);
  for (const k of Object.keys(reply.body)) expect(['error', 'code', 'details']).toContain(k);
  if ('details' in reply.body) expect(typeof reply.body.details).toBe('object');
}

describe('HTTP push API (memory mode)', () => {
  let node: TestNode;
  let push: string;
  let batch: string;

  beforeAll(async () => {
    node = await startNode({
      apiKeys: API_KEYS,
      limits: { maxDataBytes: 1024, maxBodyBytes: 8192 },
    });
    push = `${node.url}/api/push`;
    batch = `${node.url}/api/push/batch`;
  });
  afterAll(async () => {
    await node?.stop();
  });

  describe('success', () => {
    it('answers 200 with exactly {id, channel[], event, data}', async () => {
      const res = await postJson(push, {
        channel: 'user:1',
        event: 'invoice.paid',
        data: { a: 1 },
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^application\/json\b/);
      expect(res.body).toEqual({
        id: expect.stringMatching(/^[0-9A-HJKMNP-TV-Z]{26}$/) as unknown,
        channel: ['user:1'],
        event: 'invoice.paid',
        data: { a: 1 },
      });
    });

    it('removes duplicate channels keeping the first order, and delivers once per channel', async () => {
      const client = await subscriber(node, ['dup:a', 'dup:b']);
      try {
        const res = await postJson(push, {
          channel: ['dup:b', 'dup:a', 'dup:b', 'dup:a'],
          event: 'e',
          data: [1, 'x'],
        });
        expect(res.status).toBe(200);
        expect(res.body.channel).toEqual(['dup:b', 'dup:a']);
        const got = await client.waitFor(2);
        expect(got.map((m) => [m.channel, m.id, m.event, m.data])).toEqual([
          ['dup:b', res.body.id, 'e', [1, 'x']],
          ['dup:a', res.body.id, 'e', [1, 'x']],
        ]);
        await expectExactly(node, client, 'dup:a', 2);
      } finally {
        client.close();
      }
    });

    it('takes data: null and every other JSON value', async () => {
      for (const data of [null, 0, false, '', 'text', [], {}, { nested: [null, { x: 1.5 }] }]) {
        const res = await postJson(push, { channel: 'values', event: 'v', data });
        expect(res.status).toBe(200);
        expect(res.body.data).toEqual(data);
        expect('data' in res.body).toBe(true);
      }
    });

    it('keeps data exactly as sent, "__proto__" keys included', async () => {
      const client = await subscriber(node, ['proto']);
      try {
        const data = '{"__proto__":{"admin":true},"b":[{"__proto__":1}]}';
        const res = await postJson(push, `{"channel":"proto","event":"e","data":${data}}`);
        expect(res.status).toBe(200);
        expect(JSON.stringify(res.body.data)).toBe(data);
        const [msg] = await client.waitFor(1);
        expect(JSON.stringify(msg!.data)).toBe(data);
        expect(({} as Record<string, unknown>).admin).toBeUndefined();
      } finally {
        client.close();
      }
    });

    it('takes the longest names and the most channels allowed', async () => {
      const longChannel = `${'c'.repeat(191)}:@=.-_09Z`; // 200 chars, every allowed symbol
      expect(longChannel).toHaveLength(200);
      const longEvent = `${'e'.repeat(95)}:.-_9`;
      expect(longEvent).toHaveLength(100);
      const one = await postJson(push, { channel: longChannel, event: longEvent, data: 1 });
      expect(one.status).toBe(200);
      expect(one.body).toMatchObject({ channel: [longChannel], event: longEvent });
      const hundred = Array.from({ length: 100 }, (_, i) => `many:${i}`);
      const many = await postJson(push, { channel: hundred, event: 'e', data: 1 });
      expect(many.status).toBe(200);
      expect(many.body.channel).toEqual(hundred);
    });

    it('accepts the content type with a charset and any casing of Bearer', async () => {
      const res = await postJson(
        push,
        { channel: 'ct', event: 'e', data: 1 },
        {
          'content-type': 'application/json; charset=utf-8',
          authorization: `bearer ${API_KEY}`,
        },
      );
      expect(res.status).toBe(200);
    });

    it('gives unique ids that increase in time order', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 200; i++) {
        const res = await postJson(push, { channel: 'ids', event: 'e', data: i });
        expect(res.status).toBe(200);
        ids.push(res.body.id as string);
      }
      for (let i = 1; i < ids.length; i++) expect(ids[i]! > ids[i - 1]!).toBe(true);
      const parallel = await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          postJson(push, { channel: 'ids', event: 'e', data: i }),
        ),
      );
      const more = parallel.map((r) => r.body.id as string);
      expect(new Set([...ids, ...more]).size).toBe(300);
      for (const id of more) expect(id > ids[ids.length - 1]!).toBe(true);
    });

    it('answers what a subscriber receives', async () => {
      const client = await subscriber(node, ['deliver:1']);
      try {
        const before = Date.now();
        const res = await postJson(push, { channel: 'deliver:1', event: 'hello', data: { n: 1 } });
        const [msg] = await client.waitFor(1);
        expect(msg).toMatchObject({
          channel: 'deliver:1',
          event: 'hello',
          data: { n: 1 },
          id: res.body.id,
        });
        expect(msg!.ts).toBeGreaterThanOrEqual(before);
        expect(msg!.ts).toBeLessThanOrEqual(Date.now());
      } finally {
        client.close();
      }
    });
  });

  describe('400 invalid_json', () => {
    it('refuses a malformed body', async () => {
      for (const body of ['{"channel": "a", ', '{channel: "a"}', 'nope', '{"a":1}}']) {
        const res = await postJson(push, body);
        expectError(res, 400, 'invalid_json');
      }
    });

    it('refuses a JSON request without a body', async () => {
      const res = await send(push, {
        headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      });
      expectError(res, 400, 'invalid_json');
    });
  });

  describe('401 unauthorized', () => {
    const good = JSON.stringify({ channel: 'auth', event: 'e', data: 1 });
    const cases: Array<[string, Record<string, string>]> = [
      ['no Authorization header', {}],
      ['an unknown key', { authorization: 'Bearer unknown-key-0123456789abcdef' }],
      ['a Basic header', { authorization: 'Basic x' }],
      ['Basic with the real key', { authorization: `Basic ${API_KEY}` }],
      ['Bearer without a key', { authorization: 'Bearer ' }],
      ['the key without Bearer', { authorization: API_KEY }],
      ['a prefix of the real key', { authorization: `Bearer ${API_KEY.slice(0, -1)}` }],
      ['the real key with a suffix', { authorization: `Bearer ${API_KEY}x` }],
      ['the key followed by another word', { authorization: `Bearer ${API_KEY} extra` }],
    ];
    for (const [name, auth] of cases) {
      it(`refuses ${name}`, async () => {
        const res = await send(push, {
          headers: { 'content-type': 'application/json', ...auth },
          body: good,
        });
        expectError(res, 401, 'unauthorized');
        expect(res.headers.get('www-authenticate')).toMatch(/^Bearer\b/);
      });
    }

    it('checks the key before the body', async () => {
      const res = await send(push, {
        headers: { 'content-type': 'text/plain', authorization: 'Bearer nope-nope-nope-nope' },
        body: '{',
      });
      expectError(res, 401, 'unauthorized');
    });

    it('refuses the batch route too', async () => {
      const res = await send(batch, {
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ pushes: [{ channel: 'a', event: 'e', data: 1 }] }),
      });
      expectError(res, 401, 'unauthorized');
    });
  });

  describe('403 forbidden', () => {
    it('refuses a channel-limited key pushing outside its channels, and pushes nothing', async () => {
      const client = await subscriber(node, ['orders:1', 'user:1']);
      try {
        const auth = { authorization: `Bearer ${ORDERS_KEY}` };
        const outside = await postJson(push, { channel: 'user:1', event: 'e', data: 1 }, auth);
        expectError(outside, 403, 'forbidden');
        expect(outside.body.details).toEqual({ channel: 'user:1' });
        const mixed = await postJson(
          push,
          { channel: ['orders:1', 'user:1'], event: 'e', data: 1 },
          auth,
        );
        expectError(mixed, 403, 'forbidden');
        expect(mixed.body.details).toEqual({ channel: 'user:1' });
        // Nothing reached either channel; the key's own channels work.
        await expectExactly(node, client, 'orders:1', 0);
        const inside = await postJson(push, { channel: 'orders:1', event: 'e', data: 2 }, auth);
        expect(inside.status).toBe(200);
        await client.waitFor(2);
        expect(client.messages[1]).toMatchObject({ channel: 'orders:1', data: 2 });
        await expectExactly(node, client, 'user:1', 2);
      } finally {
        client.close();
      }
    });

    it('refuses a key without the push scope', async () => {
      const res = await postJson(
        push,
        { channel: 'x', event: 'e', data: 1 },
        { authorization: `Bearer ${READ_KEY}` },
      );
      expectError(res, 403, 'forbidden');
    });
  });

  describe('413 payload_too_large', () => {
    it('refuses data over limits.maxDataBytes, and takes data at the limit', async () => {
      // JSON.stringify('x'.repeat(n)) is n + 2 bytes.
      const at = await postJson(push, { channel: 'big', event: 'e', data: 'x'.repeat(1022) });
      expect(at.status).toBe(200);
      const over = await postJson(push, { channel: 'big', event: 'e', data: 'x'.repeat(1023) });
      expectError(over, 413, 'payload_too_large');
      expect(over.body.details).toEqual({ field: 'data', limit: 1024, size: 1025 });
    });

    it('counts data in UTF-8 bytes, not characters', async () => {
      const res = await postJson(push, { channel: 'big', event: 'e', data: 'é'.repeat(600) });
      expectError(res, 413, 'payload_too_large');
      expect(res.body.details).toMatchObject({ field: 'data', size: 1202 });
    });

    it('refuses a body over limits.maxBodyBytes', async () => {
      const body = JSON.stringify({ channel: 'big', event: 'e', data: 1, pad: 'p'.repeat(9000) });
      const res = await postJson(push, body);
      expectError(res, 413, 'payload_too_large');
      expect(res.body.details).toEqual({ field: 'body', limit: 8192 });
      // The connection is still usable afterwards.
      const next = await postJson(push, { channel: 'big', event: 'e', data: 1 });
      expect(next.status).toBe(200);
    });

    it('refuses a chunked body over limits.maxBodyBytes', async () => {
      const chunk = new TextEncoder().encode(' '.repeat(4096));
      let sent = 0;
      const stream = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent++ < 4) controller.enqueue(chunk);
          else controller.close();
        },
      });
      const res = await fetch(push, {
        method: 'POST',
        headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
        body: stream,
        duplex: 'half',
      } as RequestInit);
      expect(res.status).toBe(413);
      expect(await res.json()).toMatchObject({ code: 'payload_too_large' });
    });
  });

  describe('415 unsupported_media_type', () => {
    const body = JSON.stringify({ channel: 'ct', event: 'e', data: 1 });
    it('refuses text/plain', async () => {
      const res = await postJson(push, body, { 'content-type': 'text/plain' });
      expectError(res, 415, 'unsupported_media_type');
    });
    it('refuses a body without Content-Type', async () => {
      const res = await send(push, {
        headers: { authorization: `Bearer ${API_KEY}` },
        // A Blob without a type: fetch sends no Content-Type at all.
        body: new Blob([body]),
      });
      expectError(res, 415, 'unsupported_media_type');
    });
    it('refuses form encoding and a non-UTF-8 charset', async () => {
      for (const ct of ['application/x-www-form-urlencoded', 'application/json; charset=latin1']) {
        const res = await postJson(push, body, { 'content-type': ct });
        expectError(res, 415, 'unsupported_media_type');
      }
    });
  });

  describe('422 invalid_push', () => {
    const base = { channel: 'valid', event: 'e', data: 1 };
    const cases: Array<[string, unknown, string]> = [
      ['a missing channel', { event: 'e', data: 1 }, 'channel'],
      ['a missing event', { channel: 'c', data: 1 }, 'event'],
      ['missing data', { channel: 'c', event: 'e' }, 'data'],
      ['an empty channel array', { ...base, channel: [] }, 'channel'],
      [
        'more than 100 channels',
        { ...base, channel: Array.from({ length: 101 }, (_, i) => `c${i}`) },
        'channel',
      ],
      ['an empty channel name', { ...base, channel: '' }, 'channel'],
      ['a channel with a space', { ...base, channel: 'user 1' }, 'channel'],
      ['a channel with a slash', { ...base, channel: 'a/b' }, 'channel'],
      ['a channel with braces', { ...base, channel: '{a}' }, 'channel'],
      ['a channel with a non-ASCII letter', { ...base, channel: 'café' }, 'channel'],
      ['a channel of 201 characters', { ...base, channel: 'c'.repeat(201) }, 'channel'],
      ['a bad channel inside an array', { ...base, channel: ['ok', 'no way'] }, 'channel'],
      ['a channel that is a number', { ...base, channel: 42 }, 'channel'],
      ['an event with @ (allowed in channels only)', { ...base, event: 'a@b' }, 'event'],
      ['an event with a space', { ...base, event: 'a b' }, 'event'],
      ['an empty event', { ...base, event: '' }, 'event'],
      ['an event of 101 characters', { ...base, event: 'e'.repeat(101) }, 'event'],
      ['an event that is an object', { ...base, event: { a: 1 } }, 'event'],
    ];
    for (const [name, body, field] of cases) {
      it(`refuses ${name}`, async () => {
        const res = await postJson(push, body);
        expectError(res, 422, 'invalid_push');
        expect((res.body.details as { field?: unknown } | undefined)?.field).toBe(field);
      });
    }

    it('names the channel-count limit it enforces', async () => {
      const channel = [...Array(101).keys()].map((i) => `c:${i}`);
      const res = await postJson(push, { channel, event: 'e', data: 1 });
      expectError(res, 422, 'invalid_push');
      expect(res.body).toMatchObject({
        code: 'invalid_push',
        details: { field: 'channel', limit: 100 },
      });
    });

    it('names the missing fields in a sentence and in details', async () => {
      const res = await postJson(push, { event: 'e' });
      expectError(res, 422, 'invalid_push');
      expect(res.body).toEqual({
        error: 'channel, data: required',
        code: 'invalid_push',
        details: {
          field: 'channel',
          issues: [
            { field: 'channel', message: 'required' },
            { field: 'data', message: 'required' },
          ],
        },
      });
      const bad = await postJson(push, { ...base, event: 'a b' });
      expect(bad.body.error).toBe('event: event names are 1-100 characters of A-Z a-z 0-9 _ - : .');
    });

    for (const [name, body] of [
      ['a JSON array', '[{"channel":"c","event":"e","data":1}]'],
      ['a JSON number', '42'],
      ['a JSON string', '"push"'],
      ['JSON null', 'null'],
      ['an empty object', '{}'],
    ] as const) {
      it(`refuses a body that is ${name}`, async () => {
        const res = await postJson(push, body);
        expectError(res, 422, 'invalid_push');
      });
    }
  });

  describe('429 rate_limited', () => {
    let limited: TestNode;
    beforeAll(async () => {
      limited = await startNode({
        apiKeys: API_KEYS,
        limits: { pushesPerSecond: 1, pushBurst: 2 },
      });
    });
    afterAll(async () => {
      await limited?.stop();
    });

    it('refuses past the burst with Retry-After, per key', async () => {
      const url = `${limited.url}/api/push`;
      const p = { channel: 'rl', event: 'e', data: 1 };
      expect((await postJson(url, p)).status).toBe(200);
      expect((await postJson(url, p)).status).toBe(200);
      const refused = await postJson(url, p);
      expectError(refused, 429, 'rate_limited');
      expect(refused.headers.get('retry-after')).toBe('1');
      // Another key has its own budget.
      const other = await postJson(url, p, { authorization: `Bearer ${OTHER_KEY}` });
      expect(other.status).toBe(200);
    });

    it('charges a batch one token per push', async () => {
      const url = `${limited.url}/api/push/batch`;
      const auth = { authorization: `Bearer ${ORDERS_KEY}` };
      const pushes = [1, 2, 3].map((n) => ({ channel: 'orders:rl', event: 'e', data: n }));
      const res = await postJson(url, { pushes }, auth);
      expect(res.status).toBe(200);
      expect((res.body.results as unknown[]).length).toBe(3);
      const refused = await postJson(url, { pushes: pushes.slice(0, 1) }, auth);
      expectError(refused, 429, 'rate_limited');
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    });
  });

  describe('POST /api/push/batch', () => {
    it('answers one result per push, in order, mixing valid and invalid pushes', async () => {
      const client = await subscriber(node, ['batch:a', 'batch:b']);
      try {
        const res = await postJson(
          batch,
          {
            pushes: [
              { channel: 'batch:a', event: 'one', data: 1 },
              { channel: 'bad channel', event: 'two', data: 2 },
              { channel: ['batch:b', 'batch:a', 'batch:b'], event: 'three', data: null },
              'not a push',
              { channel: 'batch:a', event: 'big', data: 'x'.repeat(2000) },
              { channel: 'batch:a', event: 'four' },
            ],
          },
          { authorization: `Bearer ${API_KEY}` },
        );
        expect(res.status).toBe(200);
        expect(Object.keys(res.body)).toEqual(['results']);
        const results = res.body.results as Array<Record<string, unknown>>;
        expect(results).toHaveLength(6);
        expect(results[0]).toEqual({
          id: expect.any(String) as unknown,
          channel: ['batch:a'],
          event: 'one',
        });
        expect(results[1]).toEqual({ error: expect.any(String) as unknown, code: 'invalid_push' });
        expect(results[2]).toEqual({
          id: expect.any(String) as unknown,
          channel: ['batch:b', 'batch:a'],
          event: 'three',
        });
        expect(results[3]).toEqual({ error: expect.any(String) as unknown, code: 'invalid_push' });
        expect(results[4]).toEqual({
          error: expect.any(String) as unknown,
          code: 'payload_too_large',
        });
        expect(results[5]).toEqual({ error: expect.any(String) as unknown, code: 'invalid_push' });
        expect(results[0]!.id! < results[2]!.id!).toBe(true);
        // Exactly the three deliveries of the valid pushes.
        await client.waitFor(3);
        expect(client.messages.map((m) => [m.channel, m.event])).toEqual([
          ['batch:a', 'one'],
          ['batch:b', 'three'],
          ['batch:a', 'three'],
        ]);
        await expectExactly(node, client, 'batch:a', 3);
      } finally {
        client.close();
      }
    });

    it('answers forbidden per push for a channel-limited key', async () => {
      const res = await postJson(
        batch,
        {
          pushes: [
            { channel: 'orders:9', event: 'e', data: 1 },
            { channel: ['orders:9', 'user:9'], event: 'e', data: 1 },
          ],
        },
        { authorization: `Bearer ${ORDERS_KEY}` },
      );
      expect(res.status).toBe(200);
      const results = res.body.results as Array<Record<string, unknown>>;
      expect(results[0]).toMatchObject({ channel: ['orders:9'] });
      expect(results[1]).toEqual({ error: expect.any(String) as unknown, code: 'forbidden' });
    });

    it('takes exactly 100 pushes', async () => {
      const pushes = Array.from({ length: 100 }, (_, i) => ({
        channel: 'b100',
        event: 'e',
        data: i,
      }));
      const res = await postJson(batch, { pushes });
      expect(res.status).toBe(200);
      const ids = (res.body.results as Array<{ id: string }>).map((r) => r.id);
      expect(new Set(ids).size).toBe(100);
    });

    for (const [name, body] of [
      [
        'more than 100 pushes',
        { pushes: Array.from({ length: 101 }, () => ({ channel: 'c', event: 'e', data: 1 })) },
      ],
      ['no pushes', { pushes: [] }],
      ['pushes that is not an array', { pushes: { channel: 'c', event: 'e', data: 1 } }],
      ['no pushes field', { channel: 'c', event: 'e', data: 1 }],
      ['a body that is not an object', [{ channel: 'c', event: 'e', data: 1 }]],
      ['a body that is a number', 7],
    ] as const) {
      it(`refuses ${name} with 422`, async () => {
        const res = await postJson(batch, typeof body === 'number' ? String(body) : body);
        expectError(res, 422, 'invalid_push');
      });
    }

    it('refuses a malformed batch body with 400', async () => {
      expectError(await postJson(batch, '{"pushes": ['), 400, 'invalid_json');
    });
  });

  describe('Idempotency-Key', () => {
    it('answers the first response again and pushes nothing new', async () => {
      const client = await subscriber(node, ['idem:1']);
      try {
        const body = { channel: 'idem:1', event: 'once', data: { n: 1 } };
        const first = await postJson(push, body, { 'idempotency-key': 'order-1:paid' });
        expect(first.status).toBe(200);
        const again = await postJson(push, body, { 'idempotency-key': 'order-1:paid' });
        expect(again.status).toBe(200);
        expect(again.body).toEqual(first.body);
        await client.waitFor(1);
        expect(client.messages[0]).toMatchObject({ event: 'once', id: first.body.id });
        await expectExactly(node, client, 'idem:1', 1);
      } finally {
        client.close();
      }
    });

    it('answers concurrent requests with one key once', async () => {
      const client = await subscriber(node, ['idem:c']);
      try {
        const body = { channel: 'idem:c', event: 'once', data: 1 };
        const replies = await Promise.all(
          Array.from({ length: 5 }, () => postJson(push, body, { 'idempotency-key': 'conc-1' })),
        );
        expect(replies.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
        expect(new Set(replies.map((r) => r.body.id)).size).toBe(1);
        await expectExactly(node, client, 'idem:c', 1);
      } finally {
        client.close();
      }
    });

    it('keeps keys apart per API key', async () => {
      const body = { channel: 'idem:2', event: 'e', data: 1 };
      const a = await postJson(push, body, { 'idempotency-key': 'shared-key' });
      const b = await postJson(push, body, {
        'idempotency-key': 'shared-key',
        authorization: `Bearer ${OTHER_KEY}`,
      });
      expect([a.status, b.status]).toEqual([200, 200]);
      expect(b.body.id).not.toBe(a.body.id);
    });

    it('does not keep a failed answer: a retry with the key after fixing the push works', async () => {
      const bad = await postJson(
        push,
        { channel: 'idem:3', event: 'bad event', data: 1 },
        { 'idempotency-key': 'retry-me' },
      );
      expectError(bad, 422, 'invalid_push');
      const good = await postJson(
        push,
        { channel: 'idem:3', event: 'e', data: 1 },
        { 'idempotency-key': 'retry-me' },
      );
      expect(good.status).toBe(200);
    });

    it('replays a batch, and refuses its key on the single-push route (422 idempotency_mismatch)', async () => {
      const client = await subscriber(node, ['idem:4']);
      try {
        const pushes = [{ channel: 'idem:4', event: 'e', data: 1 }];
        const b1 = await postJson(batch, { pushes }, { 'idempotency-key': 'k-batch' });
        const b2 = await postJson(batch, { pushes }, { 'idempotency-key': 'k-batch' });
        expect(b1.status).toBe(200);
        expect(b2.body).toEqual(b1.body);
        const single = await postJson(push, pushes[0], { 'idempotency-key': 'k-batch' });
        expectError(single, 422, 'idempotency_mismatch');
        expect(single.body.details).toEqual({ field: 'Idempotency-Key' });
        await expectExactly(node, client, 'idem:4', 1);
      } finally {
        client.close();
      }
    });

    it('refuses a key reused with a different body (422 idempotency_mismatch), pushing nothing', async () => {
      const client = await subscriber(node, ['idem:5']);
      try {
        const first = await postJson(
          push,
          { channel: 'idem:5', event: 'e', data: { amount: 10 } },
          { 'idempotency-key': 'order-5' },
        );
        expect(first.status).toBe(200);
        const other = await postJson(
          push,
          { channel: 'idem:5', event: 'e', data: { amount: 9999 } },
          { 'idempotency-key': 'order-5' },
        );
        expectError(other, 422, 'idempotency_mismatch');
        expect(other.headers.get('idempotent-replayed')).toBeNull();
        expect(JSON.stringify(other.body)).not.toContain(String(first.body.id));
        // The first request's own retry still replays.
        const again = await postJson(
          push,
          { channel: 'idem:5', event: 'e', data: { amount: 10 } },
          { 'idempotency-key': 'order-5' },
        );
        expect(again.body).toEqual(first.body);
        await expectExactly(node, client, 'idem:5', 1);
      } finally {
        client.close();
      }
    });

    for (const [name, key] of [
      ['256 characters', 'k'.repeat(256)],
      ['a space', 'has space'],
      ['a non-ASCII character', 'clé'],
      ['a control character', 'a\tb'],
    ] as const) {
      it(`refuses a key with ${name} (422)`, async () => {
        const res = await send(push, {
          headers: {
            authorization: `Bearer ${API_KEY}`,
            'content-type': 'application/json',
            'idempotency-key': key,
          },
          body: JSON.stringify({ channel: 'idem:bad', event: 'e', data: 1 }),
        });
        expectError(res, 422, 'invalid_push');
        expect(res.body.details).toEqual({ field: 'Idempotency-Key' });
      });
    }

    it('never replays the answer of another key id, whatever characters key ids hold', async () => {
      // Key ids from a hook may hold ":" and look like "<id>:<route>" prefixes.
      const ids: Record<string, string> = {
        'Bearer token-a-0123456789abcdef': 'a',
        'Bearer token-b-0123456789abcdef': 'a:push',
      };
      const hooked = await startNode(
        {},
        {
          authenticateApi: (request) => {
            const keyId = ids[String(request.headers.authorization)];
            if (!keyId) throw new Error('unknown key');
            return { keyId, scopes: ['push'] };
          },
        },
      );
      try {
        const b = await postJson(
          `${hooked.url}/api/push/batch`,
          { pushes: [{ channel: 'secret', event: 'e', data: 'for b only' }] },
          { authorization: 'Bearer token-b-0123456789abcdef', 'idempotency-key': 'k' },
        );
        expect(b.status).toBe(200);
        const a = await postJson(
          `${hooked.url}/api/push`,
          { channel: 'mine', event: 'e', data: 'for a' },
          { authorization: 'Bearer token-a-0123456789abcdef', 'idempotency-key': 'batch:k' },
        );
        expect(a.status).toBe(200);
        expect(a.body).toMatchObject({ channel: ['mine'], data: 'for a' });
        expect(a.headers.get('idempotent-replayed')).toBeNull();
      } finally {
        await hooked.stop();
      }
    });

    it('forgets a key after the idempotency window', async () => {
      const short = await startNode({ idempotencyTtlS: 1 });
      try {
        const url = `${short.url}/api/push`;
        const body = { channel: 'idem:ttl', event: 'e', data: 1 };
        const first = await postJson(url, body, { 'idempotency-key': 'ttl-1' });
        const replay = await postJson(url, body, { 'idempotency-key': 'ttl-1' });
        expect(replay.body.id).toBe(first.body.id);
        // Time is the thing under test here: wait the window out.
        await new Promise((r) => setTimeout(r, 1100));
        const later = await postJson(url, body, { 'idempotency-key': 'ttl-1' });
        expect(later.status).toBe(200);
        expect(later.body.id).not.toBe(first.body.id);
        expect(later.headers.get('idempotent-replayed')).toBeNull();
      } finally {
        await short.stop();
      }
    });

    it('takes a key of 255 visible characters', async () => {
      const key = `${'!~'.repeat(127)}x`;
      const res = await postJson(
        push,
        { channel: 'idem:5', event: 'e', data: 1 },
        {
          'idempotency-key': key,
        },
      );
      expect(res.status).toBe(200);
    });
  });

  describe('operations routes', () => {
    it('answers /healthz and /readyz 200 on a ready node', async () => {
      const health = await send(`${node.url}/healthz`, { method: 'GET' });
      expect(health.status).toBe(200);
      const ready = await send(`${node.url}/readyz`, { method: 'GET' });
      expect(ready.status).toBe(200);
      expect(ready.body).toEqual({ status: 'ready' });
    });

    it('answers an unknown route 404 with the JSON error', async () => {
      expectError(await send(`${node.url}/nope`, { method: 'GET' }), 404, 'not_found');
      const api = await postJson(`${node.url}/api/nope`, { a: 1 });
      expectError(api, 404, 'not_found');
    });
  });

  describe('draining', () => {
    it('drops readiness at once, serves through the shutdown delay, then stops listening', async () => {
      const draining = await startNode({ shutdown: { delayMs: 300 } });
      let stopping: Promise<unknown> | undefined;
      try {
        const url = `${draining.url}/api/push`;
        expect((await postJson(url, { channel: 'd', event: 'e', data: 1 })).status).toBe(200);
        stopping = draining.server.stop();
        expect(draining.server.state()).toBe('draining');
        const ready = await send(`${draining.url}/readyz`, { method: 'GET' });
        expect(ready.status).toBe(503);
        expect(ready.body).toEqual({ status: 'draining' });
        const health = await send(`${draining.url}/healthz`, { method: 'GET' });
        expect(health.status).toBe(200);
        // Inside the delay the load balancer may still send traffic here: it is served.
        const during = await postJson(url, { channel: 'd', event: 'e', data: 2 });
        expect(during.status).toBe(200);
        await expect(stopping).resolves.toEqual({ drained: true, inflightLeft: 0 });
        expect(draining.server.state()).toBe('stopped');
        await expect(fetch(`${draining.url}/healthz`)).rejects.toThrow();
      } finally {
        await (stopping ?? draining.stop());
      }
    });
  });
});
