import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import {
  connectClient,
  postJson,
  startNode,
  token,
  type TestClient,
  type TestNode,
} from '../support/nodes.js';

/** A node for one describe block, stopped after it. */
function useNode(config: ConfigInput = {}): () => TestNode {
  let node: TestNode | undefined;
  beforeAll(async () => {
    node = await startNode(config);
  });
  afterAll(async () => {
    await node?.stop();
  });
  return () => node!;
}

/** Clients opened in a test, closed after it whatever happens. */
async function withClients(
  url: string,
  claims: Array<{ sub?: string; channels?: string[] }>,
  body: (...clients: TestClient[]) => Promise<void>,
): Promise<void> {
  const clients: TestClient[] = [];
  try {
    for (const c of claims) clients.push(await connectClient(url, { token: await token(c) }));
    await body(...clients);
  } finally {
    for (const c of clients) c.close();
  }
}

async function push(url: string, channel: string, data: unknown = null, event = 'e') {
  const res = await postJson(`${url}/api/push`, { channel, event, data });
  expect(res.status).toBe(200);
  return res.body;
}

/**
 * Pushes to `barrier` (which the client has joined) and waits for it: everything pushed before on
 * this single node has been written to the socket by then, so what has not arrived never will.
 */
async function drainThrough(url: string, client: TestClient, barrier: string): Promise<void> {
  const { id } = await push(url, barrier, 'barrier');
  while (!client.messages.some((m) => m.id === id))
    await client.waitFor(client.messages.length + 1);
}

describe('channel authorization', () => {
  const node = useNode({ publicChannels: ['public:*', 'news'] });

  it('allows exact names and * prefix patterns of the channels claim, nothing else', async () => {
    await withClients(node().url, [{ sub: 'u1', channels: ['user:1', 'org:7:*'] }], async (c) => {
      for (const channel of ['user:1', 'org:7:a', 'org:7:b:c', 'org:7:'])
        expect(await c.join(channel)).toMatchObject({ ok: true, channel });
      for (const channel of ['org:8:a', 'org:7', 'org:70:a', 'user:10', 'user:', 'xorg:7:a'])
        expect(await c.join(channel)).toEqual({ ok: false, error: 'forbidden' });
    });
  });

  it('lets publicChannels be joined without a claim', async () => {
    await withClients(node().url, [{ sub: 'anon' }], async (c) => {
      expect(await c.join('public:lobby')).toMatchObject({ ok: true, channel: 'public:lobby' });
      expect(await c.join('news')).toMatchObject({ ok: true, channel: 'news' });
      expect(await c.join('newsx')).toEqual({ ok: false, error: 'forbidden' });
      expect(await c.join('private:1')).toEqual({ ok: false, error: 'forbidden' });
    });
  });

  it('answers ok with the channel and its position: before any push, then the last push', async () => {
    await withClients(
      node().url,
      [{ channels: ['off:*'] }, { channels: ['off:*'] }],
      async (a, b) => {
        const first = await a.join('off:1');
        expect(first).toEqual({ ok: true, channel: 'off:1', offset: expect.stringMatching(/:0$/) });
        await push(node().url, 'off:1', 1);
        const [msg] = await a.waitFor(1);
        expect(msg!.offset).toBe(`${(first.offset as string).split(':')[0]}:1`);
        expect(await b.join('off:1')).toEqual({ ok: true, channel: 'off:1', offset: msg!.offset });
      },
    );
  });

  it('refuses invalid channel names with invalid_channel', async () => {
    await withClients(node().url, [{ channels: ['*'] }], async (c) => {
      for (const channel of [
        '',
        'has space',
        'a/b',
        '{room}',
        'ünï',
        'tab\t',
        'star*',
        'x'.repeat(201),
      ])
        expect(await c.join(channel), JSON.stringify(channel)).toEqual({
          ok: false,
          error: 'invalid_channel',
        });
      const longest = 'x'.repeat(200);
      expect(await c.join(longest)).toMatchObject({ ok: true, channel: longest });
      expect(await c.emit('leave', { channel: 'a/b' })).toEqual({
        ok: false,
        error: 'invalid_channel',
      });
    });
  });

  it('refuses malformed join payloads with invalid_request', async () => {
    await withClients(node().url, [{ channels: ['*'] }], async (c) => {
      const invalid = { ok: false, error: 'invalid_request' };
      for (const payload of ['chan', null, 42, true, [], {}, { channel: 5 }, { channel: null }])
        expect(await c.emit('join', payload), JSON.stringify(payload)).toEqual(invalid);
      expect(await c.emit('join', Buffer.from('chan'))).toEqual(invalid);
      // No payload at all, only the acknowledgement.
      const bare = (await c.socket.timeout(5000).emitWithAck('join')) as unknown;
      expect(bare).toEqual(invalid);
      for (const payload of ['chan', null, {}, { channel: 1 }])
        expect(await c.emit('leave', payload)).toEqual(invalid);
      // Still serving.
      expect(await c.join('after')).toMatchObject({ ok: true, channel: 'after' });
    });
  });

  it('survives events without an acknowledgement and unknown events', async () => {
    await withClients(node().url, [{ channels: ['*'] }], async (c) => {
      c.socket.emit('join', { channel: 'noack' });
      c.socket.emit('join', 'garbage');
      c.socket.emit('join');
      c.socket.emit('leave', null);
      c.socket.emit('refresh', { token: 'garbage' });
      c.socket.emit('refresh');
      c.socket.emit('no-such-event', { x: 1 });
      c.socket.emit('no-such-event', () => {});
      c.socket.emit('msg', { channel: 'noack', event: 'spoof', data: 1 });
      expect(await c.join('later')).toMatchObject({ ok: true, channel: 'later' });
      expect(c.socket.connected).toBe(true);
      // A client cannot fan out by emitting `msg` itself.
      await drainThrough(node().url, c, 'later');
      expect(c.messages.map((m) => m.channel)).toEqual(['later']);
    });
  });

  it('answers join with garbage `since` values without hanging, and recovers a real one', async () => {
    await withClients(node().url, [{ channels: ['since:*'] }], async (c) => {
      await push(node().url, 'since:g', 1);
      for (const since of ['', 'abc', '::', 'x:-1', 'deadbeef:1', 'a'.repeat(1000), 7, null]) {
        const answer = await c.join('since:g', { since });
        if (answer.ok) expect(answer, JSON.stringify(since)).toMatchObject({ recovered: false });
        else expect(answer, JSON.stringify(since)).toEqual({ ok: false, error: 'invalid_request' });
        expect(await c.emit('leave', { channel: 'since:g' })).toEqual({ ok: true });
      }
      expect(c.socket.connected).toBe(true);

      // A real position is recovered: the message after it is replayed before the answer.
      await c.join('since:r');
      const first = await push(node().url, 'since:r', 'first');
      const [got] = await c.waitFor(1);
      expect(got!.id).toBe(first.id);
      await c.emit('leave', { channel: 'since:r' });
      await push(node().url, 'since:r', 'missed');
      expect(await c.join('since:r', { since: got!.offset })).toMatchObject({
        ok: true,
        recovered: true,
        missed: 1,
      });
      await c.waitFor(2);
      expect(c.messages.map((m) => m.data)).toEqual(['first', 'missed']);
    });
  });
});

describe('joining, leaving and delivery', () => {
  const node = useNode();

  it('treats a second join as a no-op: ok, and delivery once', async () => {
    await withClients(node().url, [{ channels: ['twice', 'bar'] }], async (c) => {
      expect(await c.join('twice')).toMatchObject({ ok: true, channel: 'twice' });
      expect(await c.join('twice')).toMatchObject({ ok: true, channel: 'twice' });
      await c.join('bar');
      const { id } = await push(node().url, 'twice', 1);
      await drainThrough(node().url, c, 'bar');
      expect(c.messages.filter((m) => m.channel === 'twice').map((m) => m.id)).toEqual([id]);
    });
  });

  it('answers concurrent duplicate joins ok and still delivers once', async () => {
    await withClients(node().url, [{ channels: ['dup', 'bar'] }], async (c) => {
      const answers = await Promise.all([c.join('dup'), c.join('dup'), c.join('dup')]);
      for (const a of answers) expect(a).toMatchObject({ ok: true, channel: 'dup' });
      await c.join('bar');
      await push(node().url, 'dup', 1);
      await drainThrough(node().url, c, 'bar');
      expect(c.messages.filter((m) => m.channel === 'dup')).toHaveLength(1);
    });
  });

  it('replays missed messages once when the same join with since arrives twice at once', async () => {
    await withClients(node().url, [{ channels: ['rec', 'bar'] }], async (c) => {
      await c.join('bar');
      await c.join('rec');
      await push(node().url, 'rec', 0);
      const [seen] = await c.waitFor(1);
      await c.emit('leave', { channel: 'rec' });
      await push(node().url, 'rec', 1);
      await push(node().url, 'rec', 2);
      const answers = await Promise.all([
        c.join('rec', { since: seen!.offset }),
        c.join('rec', { since: seen!.offset }),
      ]);
      for (const a of answers) expect(a).toMatchObject({ ok: true, channel: 'rec' });
      await drainThrough(node().url, c, 'bar');
      expect(c.messages.filter((m) => m.channel === 'rec').map((m) => m.data)).toEqual([0, 1, 2]);
    });
  });

  it('stops delivery after leave', async () => {
    await withClients(node().url, [{ channels: ['gone', 'bar'] }], async (c) => {
      await c.join('gone');
      await c.join('bar');
      await push(node().url, 'gone', 'before');
      await c.waitFor(1);
      expect(await c.emit('leave', { channel: 'gone' })).toEqual({ ok: true });
      await push(node().url, 'gone', 'after');
      await drainThrough(node().url, c, 'bar');
      expect(c.messages.filter((m) => m.channel === 'gone').map((m) => m.data)).toEqual(['before']);
      // Leaving a channel never joined is fine too.
      expect(await c.emit('leave', { channel: 'never' })).toEqual({ ok: true });
    });
  });

  it('sends msg with exactly channel, event, data, id, ts and offset', async () => {
    await withClients(node().url, [{ channels: ['shape'] }], async (c) => {
      await c.join('shape');
      const before = Date.now();
      const body = await push(node().url, 'shape', { nested: [1, 'two', null] }, 'ev.name');
      const [msg] = await c.waitFor(1);
      expect(Object.keys(msg!).sort()).toEqual(['channel', 'data', 'event', 'id', 'offset', 'ts']);
      expect(msg).toMatchObject({
        channel: 'shape',
        event: 'ev.name',
        data: { nested: [1, 'two', null] },
        id: body.id,
      });
      expect(typeof msg!.offset).toBe('string');
      expect(msg!.ts).toBeGreaterThanOrEqual(before - 1000);
      expect(msg!.ts).toBeLessThanOrEqual(Date.now() + 1000);
    });
  });
});

describe('delivery without history', () => {
  const node = useNode({ history: { size: 0 } });

  it('sends msg without offset and answers join without offset', async () => {
    await withClients(
      node().url,
      [{ channels: ['nohist'] }, { channels: ['nohist'] }],
      async (a, b) => {
        expect(await a.join('nohist')).toEqual({ ok: true, channel: 'nohist' });
        const body = await push(node().url, 'nohist', 'x');
        const [msg] = await a.waitFor(1);
        expect(Object.keys(msg!).sort()).toEqual(['channel', 'data', 'event', 'id', 'ts']);
        expect(msg!.id).toBe(body.id);
        expect(await b.join('nohist')).toEqual({ ok: true, channel: 'nohist' });
      },
    );
  });
});

describe('per-socket limits', () => {
  describe('maxChannelsPerSocket', () => {
    const node = useNode({ limits: { maxChannelsPerSocket: 3 } });

    it('refuses the fourth channel with too_many_channels until one is left', async () => {
      await withClients(node().url, [{ channels: ['*'] }], async (c) => {
        for (const channel of ['l1', 'l2', 'l3'])
          expect(await c.join(channel)).toMatchObject({ ok: true, channel });
        expect(await c.join('l4')).toEqual({ ok: false, error: 'too_many_channels' });
        // Rejoining one already joined is not a new channel.
        expect(await c.join('l2')).toMatchObject({ ok: true, channel: 'l2' });
        expect(await c.emit('leave', { channel: 'l1' })).toEqual({ ok: true });
        expect(await c.join('l4')).toMatchObject({ ok: true, channel: 'l4' });
      });
    });

    it('counts concurrent joins against the limit', async () => {
      await withClients(node().url, [{ channels: ['*'] }], async (c) => {
        const answers = await Promise.all(['c1', 'c2', 'c3', 'c4', 'c5'].map((ch) => c.join(ch)));
        expect(answers.filter((a) => a.ok)).toHaveLength(3);
        expect(answers.filter((a) => !a.ok)).toEqual([
          { ok: false, error: 'too_many_channels' },
          { ok: false, error: 'too_many_channels' },
        ]);
      });
    });
  });

  describe('socketEventsPerSecond', () => {
    const node = useNode({ limits: { socketEventsPerSecond: 1, socketEventBurst: 3 } });

    it('answers rate_limited past the burst, and serves again after the refill', async () => {
      await withClients(node().url, [{ channels: ['*'] }], async (c) => {
        const answers = await Promise.all(['r1', 'r2', 'r3', 'r4', 'r5'].map((ch) => c.join(ch)));
        expect(answers.slice(0, 3).every((a) => a.ok === true)).toBe(true);
        expect(answers.slice(3)).toEqual([
          { ok: false, error: 'rate_limited' },
          { ok: false, error: 'rate_limited' },
        ]);
        expect(await c.emit('leave', { channel: 'r1' })).toEqual({
          ok: false,
          error: 'rate_limited',
        });
        // The refill is the thing under test: a second of real time gives back one event.
        await new Promise((r) => setTimeout(r, 1100));
        expect(await c.join('r4')).toMatchObject({ ok: true, channel: 'r4' });
      });
    });
  });
});
