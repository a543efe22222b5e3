import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectExactly, subscriber, until } from '../support/assertions.js';
import { API_KEY, postJson, startNode, type TestNode } from '../support/nodes.js';
import { configSchema } from '../../src/config/schema.js';
import { pushBodyReader } from '../../src/http/push-body.js';

// The push routes are served on Node's own request and response, without Express's router
// (src/http/app.ts); the spellings Express also routes reach the same handlers through it.
// These tests hold the two ways to one answer, and the body reader to what body-parser did.

/** The request counter of `GET /metrics` for one route, status and method. */
async function requests(
  node: TestNode,
  route: string,
  status: number,
  method = 'POST',
): Promise<number> {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  const prefix = `pushcast_api_requests_total{route="${route}",method="${method}",status="${status}"} `;
  const line = text.split('\n').find((l) => l.startsWith(prefix));
  return line === undefined ? 0 : Number(line.slice(prefix.length));
}

/** An answer's headers but those that differ from answer to answer (date, id, length). */
function stableHeaders(headers: Headers): Record<string, string> {
  const kept: Record<string, string> = {};
  headers.forEach((value, name) => {
    if (!['date', 'x-request-id', 'content-length'].includes(name)) kept[name] = value;
  });
  return kept;
}

/** Writes `parts` to a raw connection, pausing between them; resolves with the raw answer. */
async function sendInParts(node: TestNode, parts: string[]): Promise<string> {
  const socket: Socket = connect(node.port, '127.0.0.1');
  let answer = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (answer += chunk));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  for (const part of parts) {
    socket.write(part);
    await new Promise((r) => setTimeout(r, 30));
  }
  await until(() => answer.includes('\r\n\r\n') && answer.endsWith('}'), 5000, 'the answer');
  socket.destroy();
  await closed;
  return answer;
}

function head(path: string, length: number, extra = ''): string {
  return (
    `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${API_KEY}\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${length}\r\n${extra}\r\n`
  );
}

describe('push routes outside the router', () => {
  let node: TestNode;
  const errors: string[] = [];
  beforeAll(async () => {
    // Errors the node logs (a 500 would be logged as "request failed").
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        const line = JSON.parse(chunk.toString()) as { level: number; msg: string };
        if (line.level >= 50) errors.push(line.msg);
        done();
      },
    });
    node = await startNode({ limits: { maxBodyBytes: 4096 } }, undefined, {
      logger: pino({ level: 'error' }, sink),
    });
  });
  afterAll(async () => {
    await node.stop();
    expect(errors).toEqual([]);
  });

  it('answers every spelling Express also routes the same, counted under one route', async () => {
    const spellings = ['/api/push', '/api/push?trace=1', '/api/push/', '/API/Push'];
    const before = await requests(node, '/api/push', 200);
    const answers = [];
    for (const path of spellings) {
      const res = await postJson(`${node.url}${path}`, { channel: 'sp', event: 'e', data: path });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ channel: ['sp'], event: 'e', data: path });
      expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
      answers.push(stableHeaders(res.headers));
    }
    // Security headers, content type, keep-alive: the same set on every spelling.
    for (const headers of answers.slice(1)) expect(headers).toEqual(answers[0]);
    expect(answers[0]).toMatchObject({
      'content-security-policy': "default-src 'none';frame-ancestors 'none'",
      'x-content-type-options': 'nosniff',
      'content-type': 'application/json; charset=utf-8',
    });
    expect(await requests(node, '/api/push', 200)).toBe(before + spellings.length);
  });

  it('answers errors the same on both ways, with the error headers', async () => {
    const answers = [];
    for (const path of ['/api/push/batch', '/api/push/batch/']) {
      const res = await fetch(`${node.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"pushes":[]}',
      });
      expect(res.status).toBe(401);
      expect(await res.json()).toMatchObject({ code: 'unauthorized' });
      answers.push(stableHeaders(res.headers));
    }
    expect(answers[1]).toEqual(answers[0]);
    expect(answers[0]).toMatchObject({ 'www-authenticate': 'Bearer realm="pushcast"' });
    expect(await requests(node, '/api/push/batch', 401)).toBeGreaterThanOrEqual(2);
  });

  it('answers HEAD on a push route 404 with the length of the body it leaves out', async () => {
    const get = await fetch(`${node.url}/api/push`);
    const body = await get.text();
    expect(get.status).toBe(404);
    for (const path of ['/api/push', '/api/push/']) {
      const head = await fetch(`${node.url}${path}`, { method: 'HEAD' });
      expect(head.status).toBe(404);
      expect(head.headers.get('content-length')).toBe(String(Buffer.byteLength(body)));
    }
    // Counted under the route's pattern, as the router has always counted it.
    expect(await requests(node, '/api/push', 404, 'HEAD')).toBe(2);
  });

  it('answers OPTIONS on every spelling with 204 and Allow, not the router text', async () => {
    for (const path of ['/api/push', '/api/push/', '/API/PUSH/BATCH']) {
      const res = await fetch(`${node.url}${path}`, { method: 'OPTIONS' });
      expect(res.status).toBe(204);
      expect(res.headers.get('allow')).toBe('GET, POST');
      expect(await res.text()).toBe('');
    }
  });

  it('reads a body that arrives in several pieces', async () => {
    const client = await subscriber(node, ['pieces']);
    try {
      const body = JSON.stringify({
        channel: 'pieces',
        event: 'e',
        data: { text: 'x'.repeat(900) },
      });
      const answer = await sendInParts(node, [
        head('/api/push', Buffer.byteLength(body)),
        body.slice(0, 10),
        body.slice(10, 500),
        body.slice(500),
      ]);
      expect(answer).toMatch(/^HTTP\/1\.1 200 /);
      const [message] = await client.waitFor(1);
      expect(message!.data).toEqual({ text: 'x'.repeat(900) });
    } finally {
      client.close();
    }
  });

  it('refuses a body announced over the limit with 413 once it is read off', async () => {
    const body = JSON.stringify({ channel: 'big', event: 'e', data: 'y'.repeat(5000) });
    const answer = await sendInParts(node, [
      head('/api/push', Buffer.byteLength(body)),
      body.slice(0, 2000),
      body.slice(2000),
    ]);
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    const json = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as Record<
      string,
      unknown
    >;
    expect(json).toMatchObject({
      code: 'payload_too_large',
      details: { field: 'body', limit: 4096 },
    });
  });

  it('publishes nothing for a body its client abandons, and keeps serving', async () => {
    const client = await subscriber(node, ['cut']);
    try {
      const body = JSON.stringify({ channel: 'cut', event: 'e', data: 'z'.repeat(200) });
      const socket = connect(node.port, '127.0.0.1');
      await new Promise((r) => socket.once('connect', r));
      socket.write(head('/api/push', Buffer.byteLength(body)) + body.slice(0, 100));
      await new Promise((r) => setTimeout(r, 50));
      const closed = new Promise((r) => socket.once('close', r));
      socket.destroy();
      await closed;
      // Nothing came of the cut request: the sentinel is the only message.
      await expectExactly(node, client, 'cut', 0);
    } finally {
      client.close();
    }
  });
});

describe('push body reader', () => {
  it('settles when the client left while the checks before the body waited', async () => {
    // The checks before the body (a hook, a Redis round trip) can outlast the client: the read
    // that starts after its connection closed must still end (400), not wait for ever.
    const read = pushBodyReader('push', configSchema.parse({}).limits);
    let settled: (outcome: string) => void = () => undefined;
    const outcome = new Promise<string>((resolve) => (settled = resolve));
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
      req.once('close', () => {
        read(req, res).then(
          () => settled('read'),
          (err: unknown) => settled((err as { code?: string }).code ?? 'error'),
        );
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const socket = connect(port, '127.0.0.1', () => {
        socket.write(
          'POST /api/push HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
            'Content-Length: 50\r\n\r\n{"channel":',
        );
        setTimeout(() => socket.destroy(), 50);
      });
      const hung = new Promise((r) => setTimeout(() => r('hung'), 3000));
      expect(await Promise.race([outcome, hung])).toBe('invalid_json');
    } finally {
      server.close();
    }
  });
});
