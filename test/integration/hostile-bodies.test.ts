import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scanJson, withoutOversize } from '../../src/http/json-scan.js';
import { expectExactly, subscriber } from '../support/assertions.js';
import { API_KEY, postJson, startNode, type TestNode } from '../support/nodes.js';

// Bodies built to hurt: nested thousands deep, megabytes of keys, corrupt compression. Each is
// refused with the contract's code, never a 500, and the node keeps serving.

const nested = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth);
const manyKeys = (count: number): string =>
  '{' + Array.from({ length: count }, (_, i) => `"k${i}":1`).join(',') + '}';

async function raw(
  url: string,
  body: string | Buffer,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : new Blob([new Uint8Array(body)]),
  });
  const text = await res.text();
  return { status: res.status, body: JSON.parse(text) as Record<string, unknown> };
}

describe('hostile push bodies', () => {
  let node: TestNode;
  let push: string;
  let batch: string;
  beforeAll(async () => {
    node = await startNode();
    push = `${node.url}/api/push`;
    batch = `${node.url}/api/push/batch`;
  });
  afterAll(async () => {
    await node.stop();
  });

  it('refuses data nested 2,000 deep with 422 (no stack overflow, no 500)', async () => {
    const res = await raw(push, `{"channel":"c","event":"e","data":${nested(2000)}}`);
    expect({ status: res.status, code: res.body.code }).toEqual({
      status: 422,
      code: 'invalid_push',
    });
    expect(res.body.details).toEqual({ field: 'data', limit: 64 });
  });

  it('refuses a batch with a slot nested 2,000 deep with 422', async () => {
    const res = await raw(batch, `{"pushes":[{"channel":"c","event":"e","data":${nested(2000)}}]}`);
    expect({ status: res.status, code: res.body.code }).toEqual({
      status: 422,
      code: 'invalid_push',
    });
  });

  it('takes data nested exactly as deep as the limit', async () => {
    const res = await raw(push, `{"channel":"c","event":"e","data":${nested(64)}}`);
    expect(res.status).toBe(200);
  });

  it('refuses a 4 MB data of 330,000 keys from the scan, without reading it whole', async () => {
    const body = `{"channel":"c","event":"e","data":${manyKeys(330_000)}}`;
    expect(body.length).toBeGreaterThan(3_500_000);
    const res = await raw(push, body);
    expect({ status: res.status, code: res.body.code }).toEqual({
      status: 413,
      code: 'payload_too_large',
    });
    // The scan stopped one byte past the limit instead of measuring four megabytes.
    expect(res.body.details).toMatchObject({ field: 'data', limit: 65536 });
    expect((res.body.details as { size: number }).size).toBeLessThan(65_536 + 20);
    expect((await fetch(`${node.url}/healthz`)).status).toBe(200);
  });

  it('counts the keys inside data: 19,000 keys of 200 bytes are refused from the scan', async () => {
    const keys =
      '{' +
      Array.from({ length: 19_000 }, (_, i) => `"${String(i).padStart(200, 'k')}":1`).join(',') +
      '}';
    const res = await raw(push, `{"channel":"c","event":"e","data":${keys}}`);
    expect(res.status).toBe(413);
    // Stopped just past the limit, not after reading (and parsing) four megabytes.
    expect((res.body.details as { size: number }).size).toBeLessThan(65_536 + 300);
  });

  it('refuses an unknown field of megabytes the same way (413 naming it)', async () => {
    const res = await raw(push, `{"channel":"c","event":"e","data":1,"pad":${manyKeys(100_000)}}`);
    expect(res.status).toBe(413);
    expect(res.body.details).toMatchObject({ field: 'pad', limit: 65536 });
  });

  it('sees through escaped key names ("d\\u0061ta" is data)', async () => {
    const res = await raw(push, `{"channel":"c","event":"e","d\\u0061ta":"${'x'.repeat(70_000)}"}`);
    expect(res.status).toBe(413);
    expect(res.body.details).toMatchObject({ field: 'data' });
  });

  it('answers an oversize batch slot in its slot and publishes the others', async () => {
    const client = await subscriber(node, ['hostile:b']);
    try {
      const res = await postJson(batch, {
        pushes: [
          { channel: 'hostile:b', event: 'small', data: 1 },
          { channel: 'hostile:b', event: 'big', data: 'x'.repeat(70_000) },
          { channel: 'hostile:b', event: 'small', data: 2 },
        ],
      });
      expect(res.status).toBe(200);
      const results = res.body.results as Array<Record<string, unknown>>;
      expect(results.map((r) => r.code ?? 'ok')).toEqual(['ok', 'payload_too_large', 'ok']);
      await expectExactly(node, client, 'hostile:b', 2);
    } finally {
      client.close();
    }
  });

  it('refuses a batch whose slot is far over the limit as a whole (413)', async () => {
    const res = await raw(
      batch,
      `{"pushes":[{"channel":"c","event":"e","data":${manyKeys(100_000)}}]}`,
    );
    expect(res.status).toBe(413);
    expect(res.body.details).toMatchObject({ field: 'pushes.0.data' });
  });

  it('answers a corrupt gzip body with 400 invalid_json, not 500', async () => {
    const good = gzipSync(Buffer.from('{"channel":"c","event":"e","data":1}'));
    const corrupt = Buffer.concat([good.subarray(0, 12), Buffer.from('not gzip at all')]);
    const res = await raw(push, corrupt, { 'content-encoding': 'gzip' });
    expect({ status: res.status, code: res.body.code }).toEqual({
      status: 400,
      code: 'invalid_json',
    });
    // A well-formed gzip body is read as usual.
    expect((await raw(push, good, { 'content-encoding': 'gzip' })).status).toBe(200);
  });

  it('answers an unknown content encoding with 415', async () => {
    const res = await raw(push, '{}', { 'content-encoding': 'br-nope' });
    expect({ status: res.status, code: res.body.code }).toEqual({
      status: 415,
      code: 'unsupported_media_type',
    });
  });
});

describe('the bounded scan', () => {
  const limits = { maxDepth: 10, maxDataBytes: 10, maxFieldBytes: 30 };
  it('measures data as sent without whitespace, in each batch slot by index', () => {
    const body = Buffer.from(
      JSON.stringify(
        {
          pushes: [
            1,
            { channel: 'a', data: 'x'.repeat(20) },
            { data: 1 },
            { data: [1, 2, 3, 4, 5] },
          ],
        },
        null,
        2,
      ),
    );
    const scan = scanJson(body, 'batch', limits);
    expect(scan.ok).toBe(true);
    if (!scan.ok) return;
    expect(scan.oversize.map((f) => [f.slot, f.key, f.size])).toEqual([
      [1, 'data', 22],
      [3, 'data', 11],
    ]);
    const cut = JSON.parse(withoutOversize(body, scan.oversize).toString()) as {
      pushes: unknown[];
    };
    expect(cut.pushes).toEqual([1, { channel: 'a', data: null }, { data: 1 }, { data: null }]);
  });

  it('leaves strings with escaped quotes and brackets alone', () => {
    const body = Buffer.from(JSON.stringify({ channel: 'a', data: ['a"]}[{\\', '"'] }));
    expect(scanJson(body, 'push', { ...limits, maxDataBytes: 18 })).toEqual({
      ok: true,
      oversize: [],
    });
    expect(scanJson(body, 'push', { ...limits, maxDataBytes: 17 })).toMatchObject({
      ok: false,
      field: { key: 'data', size: 18 },
    });
  });
});
