import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPushServer, type PushServer } from '../../src/server.js';
import { API_KEY, JWT_SECRET, connectClient, postJson, token } from '../support/nodes.js';
import { until } from '../support/assertions.js';
import { captureLog } from '../support/log-capture.js';

/** Logs at info level: a request id per API call, a connection id per socket, no secrets or payloads. */
describe('logs', () => {
  const { logger, lines, raw } = captureLog('info');
  let server: PushServer;
  let url: string;

  beforeAll(async () => {
    server = createPushServer(
      {
        env: 'test',
        host: '127.0.0.1',
        port: 0,
        apiKeys: [{ key: API_KEY, id: 'backend' }],
        jwt: { secret: JWT_SECRET },
      },
      { logger },
    );
    url = (await server.start()).url.replace('localhost', '127.0.0.1');
  });
  afterAll(async () => server?.stop());

  it('gives every API call a request id (echoed in X-Request-Id) and every socket a connection id', async () => {
    const jwt = await token({ sub: 'user-9', channels: ['logs:*'] });
    const c = await connectClient(url, { token: jwt });
    await c.join('logs:a');
    const res = await postJson(
      `${url}/api/push`,
      { channel: 'logs:a', event: 'secret-event', data: { card: '4111-1111' } },
      { 'x-request-id': 'req-abc-1' },
    );
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toBe('req-abc-1');
    const bad = await postJson(
      `${url}/api/push`,
      {},
      { authorization: 'Bearer not-the-key-0123456789' },
    );
    expect(bad.status).toBe(401);
    const generated = bad.headers.get('x-request-id');
    expect(generated).toMatch(/^[0-9a-f-]{36}$/);
    await c.waitFor(1);
    c.close();
    // Each API call is logged once answered, the socket once the node has seen it close.
    await until(
      () =>
        lines.some((l) => l.msg === 'api request' && l.requestId === generated) &&
        lines.some((l) => l.msg === 'api request' && l.requestId === 'req-abc-1') &&
        lines.some((l) => l.msg === 'socket disconnected'),
      5000,
      'the log lines of both API calls and of the socket closing',
    );

    const api = lines.filter((l) => l.msg === 'api request');
    expect(api.find((l) => l.requestId === 'req-abc-1')).toMatchObject({
      method: 'POST',
      path: '/api/push',
      status: 200,
      keyId: 'backend',
    });
    expect(api.find((l) => l.requestId === generated)).toMatchObject({ status: 401 });
    const connected = lines.find((l) => l.msg === 'socket connected');
    expect(connected).toMatchObject({ conn: c.socket.id ?? expect.any(String), userId: 'user-9' });
    expect(lines.find((l) => l.msg === 'socket disconnected')).toMatchObject({
      conn: connected!.conn,
    });

    const all = raw.join('\n');
    for (const secret of [API_KEY, 'not-the-key-0123456789', JWT_SECRET, jwt, '4111-1111'])
      expect(all).not.toContain(secret);
  });

  it('writes nothing per delivery: one push to many sockets logs its API call only', async () => {
    const jwt = await token({ sub: 'many', channels: ['logs:fan'] });
    const clients = await Promise.all(
      [...Array(30).keys()].map(() => connectClient(url, { token: jwt })),
    );
    try {
      for (const c of clients) await c.join('logs:fan');
      const before = lines.length;
      server.log.level = 'trace';
      const res = await postJson(`${url}/api/push`, { channel: 'logs:fan', event: 'e', data: 1 });
      expect(res.status).toBe(200);
      await Promise.all(clients.map((c) => c.waitFor(1)));
      await until(
        () => lines.slice(before).some((l) => l.msg === 'api request'),
        5000,
        'the log line of the API call',
      );
      server.log.level = 'info';
      expect(lines.slice(before).map((l) => l.msg)).toEqual(['api request']);
    } finally {
      for (const c of clients) c.close();
    }
  });
});
