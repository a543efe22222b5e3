import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hooks, SocketContext } from '../../src/auth/hooks.js';
import type { ConfigInput } from '../../src/config/schema.js';
import {
  connectClient,
  postJson,
  startNode,
  token,
  type TestClient,
  type TestNode,
} from '../support/nodes.js';
import { until } from '../support/assertions.js';
import { captureLog, type CapturedLog } from '../support/log-capture.js';

const fixture = (name: string): string =>
  fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));

type Refusal = Error & { data?: { code?: unknown } };

/** A node with hooks for one describe block, stopped after it. */
function useNode(
  hooks: Hooks | undefined,
  config: ConfigInput = {},
  logger?: Logger,
): () => TestNode {
  let node: TestNode | undefined;
  beforeAll(async () => {
    node = await startNode(config, hooks, logger ? { logger } : {});
  });
  afterAll(async () => {
    await node?.stop();
  });
  return () => node!;
}

async function refusal(url: string, auth: Record<string, unknown>): Promise<Refusal> {
  return connectClient(url, auth).then(
    (client) => {
      client.close();
      throw new Error('the socket connected but should have been refused');
    },
    (err: unknown) => err as Refusal,
  );
}

async function withClient(
  url: string,
  auth: Record<string, unknown>,
  body: (client: TestClient) => Promise<void>,
): Promise<void> {
  const client = await connectClient(url, auth);
  try {
    await body(client);
  } finally {
    client.close();
  }
}

/** Hook calls in arrival order. */
class Recorder {
  constructor(readonly calls: Array<{ name: string; args: unknown[] }> = []) {}

  record(name: string, ...args: unknown[]): void {
    this.calls.push({ name, args });
  }

  of(name: string): unknown[][] {
    return this.calls.filter((c) => c.name === name).map((c) => c.args);
  }

  /** Waits until `check` holds; a timeout lists every call seen. */
  async until(what: string, check: () => boolean, ms = 5000): Promise<void> {
    await until(check, ms, what).catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(this.calls)}`);
    });
  }
}

describe('authenticateSocket replacing the JWT check', () => {
  const node = useNode({
    authenticateSocket(handshake) {
      const key = handshake.auth.apiToken;
      if (key === 'letmein') return { userId: 'svc', channels: ['svc:*'], data: { plan: 'pro' } };
      if (key === 'coded') throw Object.assign(new Error('banned'), { code: 'user_banned' });
      if (key === 'nothing') return undefined as never;
      if (key === 'string-channels') return { userId: 's', channels: 'svc:1' as never };
      if (key === 'past') return { userId: 'p', exp: Math.floor(Date.now() / 1000) - 10 };
      if (key === 'echo')
        return {
          userId: 'echo',
          data: {
            query: handshake.query.room,
            host: handshake.headers.host,
            ip: handshake.address,
          },
        };
      throw new Error('no api token');
    },
    authorizeJoin(socket, channel, _params, defaults) {
      if (channel === 'whoami')
        return socket.data.query === 'r1' &&
          /^127\.0\.0\.1:\d+$/.test(String(socket.data.host)) &&
          /127\.0\.0\.1$/.test(String(socket.data.ip))
          ? true
          : { reject: 'who' };
      return defaults.authorizeJoin(socket, channel, undefined);
    },
  });

  it('accepts what the hook accepts, with the channels it grants', async () => {
    await withClient(node().url, { apiToken: 'letmein' }, async (c) => {
      expect(await c.join('svc:1')).toMatchObject({ ok: true, channel: 'svc:1' });
      expect(await c.join('other')).toEqual({ ok: false, error: 'forbidden' });
    });
  });

  it('no longer accepts a valid JWT on its own', async () => {
    const err = await refusal(node().url, { token: await token({ sub: 'u1', channels: ['*'] }) });
    expect(err.message).toBe('unauthorized');
    expect(err.data).toEqual({ code: 'unauthorized' });
  });

  it('refuses when the hook throws, passing a code the error carries', async () => {
    expect((await refusal(node().url, { apiToken: 'wrong' })).data).toEqual({
      code: 'unauthorized',
    });
    const coded = await refusal(node().url, { apiToken: 'coded' });
    expect(coded.message).toBe('unauthorized');
    expect(coded.data).toEqual({ code: 'user_banned' });
  });

  it('refuses unusable identities, and fails closed on malformed channels', async () => {
    expect((await refusal(node().url, { apiToken: 'nothing' })).data).toEqual({
      code: 'invalid_token',
    });
    expect((await refusal(node().url, { apiToken: 'past' })).data).toEqual({
      code: 'token_expired',
    });
    await withClient(node().url, { apiToken: 'string-channels' }, async (c) => {
      // A string is not read character by character as patterns ('s', 'v', 'c', ...).
      expect(await c.join('s')).toEqual({ ok: false, error: 'forbidden' });
      expect(await c.join('svc:1')).toEqual({ ok: false, error: 'forbidden' });
    });
  });

  it('hands the hook the handshake auth, query, headers and address; data reaches authorizeJoin', async () => {
    const client = await connectClient(`${node().url}?room=r1`, { apiToken: 'echo' });
    try {
      expect(await client.join('whoami')).toMatchObject({ ok: true, channel: 'whoami' });
    } finally {
      client.close();
    }
  });
});

describe('authenticateSocket extending the JWT check', () => {
  const node = useNode({
    async authenticateSocket(handshake, defaults) {
      const identity = await defaults.authenticateSocket(handshake);
      return { ...identity, channels: [...(identity.channels ?? []), 'extra:*'] };
    },
  });

  it('keeps the token claims and adds its own channels', async () => {
    await withClient(
      node().url,
      { token: await token({ sub: 'u1', channels: ['own'] }) },
      async (c) => {
        expect(await c.join('own')).toMatchObject({ ok: true });
        expect(await c.join('extra:1')).toMatchObject({ ok: true });
        expect(await c.join('other')).toEqual({ ok: false, error: 'forbidden' });
      },
    );
  });

  it("keeps the built-in's refusals and their codes", async () => {
    expect((await refusal(node().url, {})).data).toEqual({ code: 'missing_token' });
    const expired = await token({ sub: 'u1' }, { exp: Math.floor(Date.now() / 1000) - 10 });
    expect((await refusal(node().url, { token: expired })).data).toEqual({
      code: 'token_expired',
    });
  });
});

describe('authorizeJoin', () => {
  const seen: Array<{ socket: SocketContext; channel: string; params: unknown }> = [];
  const node = useNode({
    async authorizeJoin(socket, channel, params, defaults) {
      seen.push({ socket, channel, params });
      if (channel.startsWith('deny:')) return false;
      if (channel.startsWith('reject:')) return { reject: 'x' };
      if (channel.startsWith('open:')) return true;
      // A hook that takes its time (as one calling a service does) before allowing.
      if (channel.startsWith('slow:')) return new Promise((r) => setTimeout(() => r(true), 30));
      if (channel.startsWith('boom:')) throw new Error('hook failed');
      // Plain-JavaScript hooks return other falsy values by accident (`user && user.admin`).
      if (channel === 'falsy:null') return null as never;
      if (channel === 'falsy:zero') return 0 as never;
      if (channel === 'falsy:empty') return '' as never;
      return defaults.authorizeJoin(socket, channel, params);
    },
  });

  it('refuses with forbidden on false or { reject }, even when the claim covers it', async () => {
    await withClient(
      node().url,
      { token: await token({ sub: 'u1', channels: ['*'] }) },
      async (c) => {
        expect(await c.join('deny:1')).toEqual({ ok: false, error: 'forbidden' });
        expect(await c.join('reject:1')).toEqual({ ok: false, error: 'forbidden' });
      },
    );
  });

  it('fails closed on other falsy answers (null, 0, empty string)', async () => {
    await withClient(node().url, { token: await token({ sub: 'u1' }) }, async (c) => {
      for (const channel of ['falsy:null', 'falsy:zero', 'falsy:empty'])
        expect(await c.join(channel), channel).toEqual({ ok: false, error: 'forbidden' });
    });
  });

  it('allows on true without a claim, and defers to the built-in otherwise', async () => {
    await withClient(
      node().url,
      { token: await token({ sub: 'u1', channels: ['mine'] }) },
      async (c) => {
        expect(await c.join('open:1')).toMatchObject({ ok: true, channel: 'open:1' });
        expect(await c.join('slow:1')).toMatchObject({ ok: true, channel: 'slow:1' });
        expect(await c.join('mine')).toMatchObject({ ok: true, channel: 'mine' });
        expect(await c.join('theirs')).toEqual({ ok: false, error: 'forbidden' });
      },
    );
  });

  it('sees the socket context and the join params', async () => {
    await withClient(
      node().url,
      { token: await token({ sub: 'u7', channels: ['ctx'] }) },
      async (c) => {
        await c.join('ctx', { params: { role: 'viewer' } });
        const call = seen.find((s) => s.channel === 'ctx');
        expect(call).toEqual({
          socket: { socketId: c.socket.id, userId: 'u7', channels: ['ctx'], data: {} },
          channel: 'ctx',
          params: { role: 'viewer' },
        });
      },
    );
  });

  it('refuses, and keeps serving, when the hook throws', async () => {
    await withClient(node().url, { token: await token({ sub: 'u1' }) }, async (c) => {
      const answer = await c.join('boom:1');
      expect(answer.ok).toBe(false);
      expect(['forbidden', 'invalid_request']).toContain(answer.error);
      expect(await c.join('open:2')).toMatchObject({ ok: true });
    });
  });
});

describe('authenticateApi replacing API keys', () => {
  const seenPaths: string[] = [];
  const node = useNode({
    authenticateApi(request) {
      seenPaths.push(`${request.method} ${request.path}`);
      const key = request.headers['x-service-token'];
      if (key === 'svc-secret') return { keyId: 'svc', scopes: ['push'] };
      if (key === 'read-only') return { keyId: 'ro', scopes: ['read'] };
      if (key === 'limited') return { keyId: 'lim', scopes: ['push'], channels: ['allowed:*'] };
      throw new Error('no service token');
    },
  });
  const wrongBearer = { authorization: 'Bearer not-the-key-not-the-key' };
  const body = { channel: 'api:1', event: 'e', data: 1 };

  it('accepts what the hook accepts (200) and refuses the rest (401)', async () => {
    await withClient(node().url, { token: await token({ channels: ['api:1'] }) }, async (c) => {
      await c.join('api:1');
      const ok = await postJson(`${node().url}/api/push`, body, {
        ...wrongBearer,
        'x-service-token': 'svc-secret',
      });
      expect(ok.status).toBe(200);
      const [msg] = await c.waitFor(1);
      expect(msg!.id).toBe(ok.body.id);
    });
    expect((await postJson(`${node().url}/api/push`, body)).status).toBe(401);
    const wrong = await postJson(`${node().url}/api/push`, body, { 'x-service-token': 'nope' });
    expect(wrong.status).toBe(401);
    expect(wrong.body).toMatchObject({ code: 'unauthorized' });
    expect(seenPaths).toContain('POST /push');
  });

  it('sees the route as `/push` or `/push/batch` whatever spelling of it was sent', async () => {
    seenPaths.length = 0;
    const headers = { 'x-service-token': 'svc-secret' };
    expect((await postJson(`${node().url}/api/push/`, body, headers)).status).toBe(200);
    expect((await postJson(`${node().url}/API/Push?x=1`, body, headers)).status).toBe(200);
    const batch = { pushes: [body] };
    expect((await postJson(`${node().url}/api/PUSH/batch/`, batch, headers)).status).toBe(200);
    expect(seenPaths).toEqual(['POST /push', 'POST /push', 'POST /push/batch']);
  });

  it('applies the scopes and channel limits the hook returns (403)', async () => {
    const ro = await postJson(`${node().url}/api/push`, body, { 'x-service-token': 'read-only' });
    expect(ro.status).toBe(403);
    const lim = await postJson(`${node().url}/api/push`, body, { 'x-service-token': 'limited' });
    expect(lim.status).toBe(403);
    const allowed = await postJson(
      `${node().url}/api/push`,
      { ...body, channel: 'allowed:1' },
      { 'x-service-token': 'limited' },
    );
    expect(allowed.status).toBe(200);
  });
});

describe('instrumentation listeners', () => {
  const rec = new Recorder();
  const node = useNode({
    requested: (push, ctx) => rec.record('requested', push, ctx),
    delivered: (push, ctx) => rec.record('delivered', push, ctx),
    apiRequested: (ctx) => rec.record('apiRequested', ctx),
    apiProcessed: (ctx) => rec.record('apiProcessed', ctx),
  });

  it('reports requested, delivered (with the local socket count), apiRequested and apiProcessed', async () => {
    const auth = { token: await token({ channels: ['inst:*'] }) };
    const a = await connectClient(node().url, auth);
    const b = await connectClient(node().url, auth);
    try {
      await a.join('inst:1');
      await b.join('inst:1');
      await a.join('inst:2');
      const res = await postJson(`${node().url}/api/push`, {
        channel: ['inst:1', 'inst:2', 'inst:empty'],
        event: 'ev',
        data: 1,
      });
      expect(res.status).toBe(200);
      const id = res.body.id as string;
      const requestId = res.headers.get('x-request-id');
      expect(requestId).toBeTruthy();
      await rec.until(
        'the hooks',
        () => rec.of('delivered').length >= 2 && rec.of('apiProcessed').length >= 1,
      );

      const push = {
        id,
        channels: ['inst:1', 'inst:2', 'inst:empty'],
        event: 'ev',
        ts: expect.any(Number) as number,
      };
      expect(rec.of('requested')).toEqual([[push, { node: node().server.node }]]);
      const delivered = rec.of('delivered');
      expect(delivered).toHaveLength(2);
      expect(delivered).toContainEqual([
        { ...push, channels: ['inst:1'] },
        { node: node().server.node, channel: 'inst:1', count: 2 },
      ]);
      expect(delivered).toContainEqual([
        { ...push, channels: ['inst:2'] },
        { node: node().server.node, channel: 'inst:2', count: 1 },
      ]);
      const [requested] = rec.of('apiRequested');
      expect(requested).toEqual([
        { requestId, method: 'POST', path: expect.stringMatching(/\/push$/) as string },
      ]);
      const [processed] = rec.of('apiProcessed');
      expect(processed).toEqual([
        {
          requestId,
          method: 'POST',
          path: expect.stringMatching(/\/push$/) as string,
          status: 200,
          durationMs: expect.any(Number) as number,
        },
      ]);
      expect((processed![0] as { durationMs: number }).durationMs).toBeGreaterThanOrEqual(0);
    } finally {
      a.close();
      b.close();
    }
  });

  it('reports refused API requests with their status, and embedded pushes as requested', async () => {
    rec.calls.length = 0;
    const res = await postJson(`${node().url}/api/push`, {}, { authorization: 'Bearer wrong' });
    expect(res.status).toBe(401);
    await rec.until('apiProcessed', () => rec.of('apiProcessed').length === 1);
    expect(rec.of('apiProcessed')[0]![0]).toMatchObject({ status: 401, method: 'POST' });
    expect(rec.of('requested')).toEqual([]);

    const result = await node().server.push({ channel: 'embedded', event: 'e', data: null });
    await rec.until('requested', () => rec.of('requested').length === 1);
    expect(rec.of('requested')[0]![0]).toMatchObject({ id: result.id, channels: ['embedded'] });
  });

  it('refuses an embedded push whose data is not JSON with invalid_push, pushing nothing', async () => {
    rec.calls.length = 0;
    for (const data of [undefined, 10n, { at: () => 1 }, [Symbol('s')]]) {
      const refusal = await node()
        .server.push({ channel: 'embedded', event: 'e', data })
        .then(
          () => undefined,
          (err: unknown) => err,
        );
      expect(refusal).toMatchObject({ code: 'invalid_push' });
    }
    expect(rec.of('requested')).toEqual([]);
  });
});

/** Three pushes answered 200 and received, in order, by a joined socket. */
async function pushThreeAndReceive(node: TestNode): Promise<void> {
  await withClient(node.url, { token: await token({ channels: ['t'] }) }, async (c) => {
    await c.join('t');
    for (let i = 0; i < 3; i++) {
      const res = await postJson(`${node.url}/api/push`, { channel: 't', event: 'e', data: i });
      expect(res.status).toBe(200);
    }
    await c.waitFor(3);
    expect(c.messages.map((m) => m.data)).toEqual([0, 1, 2]);
  });
}

describe('throwing instrumentation listeners', () => {
  const boom = (): never => {
    throw new Error('listener failed');
  };
  const node = useNode({
    requested: boom,
    delivered: boom,
    apiRequested: boom,
    apiProcessed: boom,
  });

  it('break neither delivery nor the API answer', async () => {
    await pushThreeAndReceive(node());
  });
});

describe('slow instrumentation listeners', () => {
  // Listeners that take their time (or never finish): delivery and answers must not wait for them.
  let pending = 0;
  const slow = (): Promise<void> => {
    pending += 1;
    return new Promise(() => {});
  };
  const node = useNode({
    requested: slow,
    delivered: slow,
    apiRequested: slow,
    apiProcessed: slow,
  });

  it('hold up neither delivery nor the API answer', async () => {
    await pushThreeAndReceive(node());
    // Every listener was called, and none of them has finished.
    expect(pending).toBeGreaterThanOrEqual(3 * 4);
  });
});

/**
 * Pushes once through a node whose four listeners reject, and collects unhandled rejections until
 * the node has reported all four failures as handled: logged by the node, or (listeners of a
 * hooks module) turned into process warnings.
 */
async function unhandledRejectionsOf(
  node: TestNode,
  log: CapturedLog['lines'],
): Promise<unknown[]> {
  const unhandled: unknown[] = [];
  let warned = 0;
  const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
  const onWarning = (warning: Error): void => {
    if (warning.name === 'PushcastHookWarning') warned += 1;
  };
  process.on('unhandledRejection', onUnhandled);
  process.on('warning', onWarning);
  const before = log.length;
  try {
    await withClient(node.url, { token: await token({ channels: ['t'] }) }, async (c) => {
      await c.join('t');
      const res = await postJson(`${node.url}/api/push`, { channel: 't', event: 'e', data: 1 });
      expect(res.status).toBe(200);
      await c.waitFor(1);
      // requested, delivered, apiRequested and apiProcessed: each failure is reported once it is
      // handled; an unhandled rejection would have been reported by the end of its own tick.
      const logged = (): number =>
        log.slice(before).filter((l) => l.msg === 'instrumentation hook threw').length;
      await until(() => warned + logged() === 4, 5000, 'the four listener failures reported');
    });
  } finally {
    process.off('unhandledRejection', onUnhandled);
    process.off('warning', onWarning);
  }
  return unhandled;
}

describe('async instrumentation listeners that reject', () => {
  const reject = (): Promise<void> => Promise.reject(new Error('async listener failed'));
  const codeLog = captureLog();
  const inCode = useNode(
    {
      requested: reject,
      delivered: reject,
      apiRequested: reject,
      apiProcessed: reject,
    },
    {},
    codeLog.logger,
  );
  const moduleLog = captureLog();
  const inModule = useNode(undefined, { hooks: fixture('hooks-async.mjs') }, moduleLog.logger);

  it('leave no unhandled rejection behind when they come from the hooks module', async () => {
    expect(await unhandledRejectionsOf(inModule(), moduleLog.lines)).toEqual([]);
  });

  // An unhandled rejection ends a Node process (default --unhandled-rejections=throw).
  it('leave no unhandled rejection behind when they are given in code', async () => {
    expect(await unhandledRejectionsOf(inCode(), codeLog.lines)).toEqual([]);
  });
});

describe('hooks module named by the `hooks` setting', () => {
  const calls = ((
    globalThis as { __pushcastHookCalls?: Array<{ name: string; args: unknown[] }> }
  ).__pushcastHookCalls ??= []);
  const rec = new Recorder(calls);
  const node = useNode(undefined, { hooks: fixture('hooks.mjs') });

  it('loads socket auth, join rules and API auth from the module', async () => {
    await withClient(node().url, { apiToken: 'letmein' }, async (c) => {
      expect(await c.join('mod:open')).toMatchObject({ ok: true });
      expect(await c.join('mod:closed')).toEqual({ ok: false, error: 'forbidden' });
      expect(await c.join('other')).toEqual({ ok: false, error: 'forbidden' });
      const res = await postJson(
        `${node().url}/api/push`,
        { channel: 'mod:open', event: 'e', data: 'via module key' },
        {
          authorization: 'Bearer not-the-key-not-the-key',
          'x-module-key': 'module-key-0123456789',
        },
      );
      expect(res.status).toBe(200);
      const [msg] = await c.waitFor(1);
      expect(msg!.data).toBe('via module key');
      const about = (name: string): boolean =>
        rec.of(name).some((args) => JSON.stringify(args).includes(res.body.id as string));
      await rec.until('module listeners', () => about('requested') && about('delivered'));
      await rec.until('api listeners', () =>
        rec.of('apiProcessed').some(([ctx]) => (ctx as { status: number }).status === 200),
      );
      expect(rec.of('apiRequested').length).toBeGreaterThan(0);
      expect(rec.of('requested')).toContainEqual([
        expect.objectContaining({ id: res.body.id, channels: ['mod:open'] }),
        { node: node().server.node },
      ]);
      expect(rec.of('delivered')).toContainEqual([
        expect.objectContaining({ id: res.body.id }),
        { node: node().server.node, channel: 'mod:open', count: 1 },
      ]);
    });
  });

  it('keeps the built-ins it extends: JWT sockets and API keys', async () => {
    await withClient(node().url, { token: await token({ channels: ['jwt:1'] }) }, async (c) => {
      expect(await c.join('jwt:1')).toMatchObject({ ok: true });
    });
    expect((await refusal(node().url, { apiToken: 'nope' })).data).toEqual({
      code: 'missing_token',
    });
    const res = await postJson(`${node().url}/api/push`, { channel: 'x', event: 'e', data: 1 });
    expect(res.status).toBe(200);
    expect(
      (
        await postJson(
          `${node().url}/api/push`,
          { channel: 'x', event: 'e', data: 1 },
          {
            authorization: 'Bearer nope',
          },
        )
      ).status,
    ).toBe(401);
  });

  it('lets hooks given in code override the module', async () => {
    const both = await startNode(
      { hooks: fixture('hooks.mjs') },
      { authenticateSocket: () => ({ userId: 'code', channels: ['code:*'] }) },
    );
    try {
      await withClient(both.url, { apiToken: 'letmein' }, async (c) => {
        expect(await c.join('code:1')).toMatchObject({ ok: true });
        expect(await c.join('mod:open')).toEqual({ ok: false, error: 'forbidden' });
      });
    } finally {
      await both.stop();
    }
  });

  it('accepts a default-export module and refuses a broken one at start', async () => {
    const def = await startNode({ hooks: fixture('hooks-default.mjs') });
    try {
      await withClient(def.url, { apiToken: 'default-export' }, async (c) => {
        expect(await c.join('def:1')).toMatchObject({ ok: true });
      });
      expect((await refusal(def.url, { token: await token({}) })).data).toEqual({
        code: 'unauthorized',
      });
    } finally {
      await def.stop();
    }
    await expect(startNode({ hooks: fixture('hooks-invalid.mjs') })).rejects.toThrow(
      /authorizeJoin must be a function/,
    );
    await expect(startNode({ hooks: fixture('no-such-hooks.mjs') })).rejects.toThrow(/cannot load/);
  });
});
