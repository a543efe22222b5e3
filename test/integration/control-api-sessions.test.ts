import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Hooks } from '../../src/auth/hooks.js';
import { createClient, type LeftInfo } from '../../src/client/index.js';
import { until } from '../support/assertions.js';
import { disconnectUser, unsubscribeUser, watchEnd } from '../support/control.js';
import { Gates } from '../support/gates.js';
import {
  API_KEY,
  connectClient,
  postJson,
  startNode,
  token,
  type TestNode,
} from '../support/nodes.js';
import { pushex, rawConnect, wsUrl, type PushexUnderTest } from '../support/phoenix.js';

/**
 * The control API on one node without Redis (the adapter's requests reach nobody else: the node
 * answers for itself), against what each kind of client holds: joins still pending, the SDK, the
 * real pushex.js and a bare Phoenix-protocol client.
 */

const gates = new Gates();
const hooks: Hooks = {
  async authorizeJoin(socket, channel, params, defaults) {
    await gates.pass(channel);
    return defaults.authorizeJoin(socket, channel, params);
  },
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('control API on one node (memory)', () => {
  let node: TestNode;
  const open: Array<{ close(): unknown }> = [];
  beforeAll(async () => {
    node = await startNode({}, hooks);
  });
  afterEach(async () => {
    await Promise.allSettled(open.splice(0).map((c) => c.close()));
  });
  afterAll(async () => node?.stop());

  const subscribers = async (channel: string): Promise<number> => {
    const res = await fetch(`${node.url}/api/channels/${channel}`, {
      headers: { authorization: `Bearer ${API_KEY}` },
    });
    return ((await res.json()) as { subscribers: number }).subscribers;
  };
  const push = async (channel: string, data: unknown): Promise<void> => {
    expect((await postJson(`${node.url}/api/push`, { channel, event: 'e', data })).status).toBe(
      200,
    );
  };
  const jwt = (sub: string) => token({ sub, channels: ['one:*', 'gate:*', 'px:*'] });

  it('disconnects and unsubscribes without Redis, counting this node’s sockets', async () => {
    const a = await connectClient(node.url, { token: await jwt('hana') });
    const b = await connectClient(node.url, { token: await jwt('hana') });
    open.push(a, b);
    expect(await a.join('one:x')).toMatchObject({ ok: true });
    expect(await b.join('one:x')).toMatchObject({ ok: true });
    expect((await unsubscribeUser(node, 'one:x', 'hana')).body).toEqual({ unsubscribed: 2 });
    expect(await subscribers('one:x')).toBe(0);
    const ends = [watchEnd(a.socket), watchEnd(b.socket)];
    expect((await disconnectUser(node, 'hana')).body).toEqual({ disconnected: 2 });
    await until(() => ends.every((e) => e.reason === 'io server disconnect'), 5000, 'both closed');
  });

  it('a join still pending answers `unsubscribed` and joins nothing; the SDK ends that subscription with onLeft', async () => {
    const plain = await connectClient(node.url, { token: await jwt('ian') });
    open.push(plain);
    const gate = gates.arm('gate:plain');
    const joining = plain.join('gate:plain');
    await gate.reached;
    expect((await unsubscribeUser(node, 'gate:plain', 'ian')).body).toEqual({ unsubscribed: 1 });
    gate.open();
    expect(await joining).toEqual({ ok: false, error: 'unsubscribed' });
    expect(await subscribers('gate:plain')).toBe(0);

    const sdkGate = gates.arm('gate:sdk');
    const left: LeftInfo[] = [];
    const errors: unknown[] = [];
    const client = createClient(node.url, {
      token: await jwt('ian-sdk'),
      transports: ['websocket'],
    });
    open.push(client);
    const sub = client.subscribe('gate:sdk', {
      onLeft: (info) => left.push(info),
      onError: (e) => errors.push(e),
    });
    await sdkGate.reached;
    expect((await unsubscribeUser(node, 'gate:sdk', 'ian-sdk')).body).toEqual({ unsubscribed: 1 });
    sdkGate.open();
    await until(() => left.length > 0, 5000, 'onLeft');
    expect(left).toEqual([{ channel: 'gate:sdk', reason: 'unsubscribed' }]);
    expect(errors).toEqual([]);
    expect(sub.subscribed).toBe(false);
  });

  it('pushex.js: an unsubscribed channel is closed (phx_close) and not rejoined; the others go on', async () => {
    const client = await pushex(node, { token: await jwt('jon') });
    open.push(client);
    expect((await client.subscribe('px:gone')).status).toBe('ok');
    expect((await client.subscribe('px:kept')).status).toBe('ok');

    expect((await unsubscribeUser(node, 'px:gone', 'jon')).body).toEqual({ unsubscribed: 1 });
    const channelState = (c: PushexUnderTest, name: string) =>
      c.client.getExistingSubscription(name)?.channel?.state;
    await until(() => channelState(client, 'px:gone') === 'closed', 5000, 'the channel closed');
    expect(channelState(client, 'px:kept')).toBe('joined');
    await push('px:gone', 'gone');
    await push('px:kept', 'kept');
    await until(() => client.received.length > 0, 5000, 'the push on px:kept');
    expect(client.received).toEqual([{ channel: 'px:kept', data: 'kept', event: 'e' }]);
    expect(await subscribers('px:gone')).toBe(0);
  });

  it('pushex.js: a disconnect closes every channel, then the socket (1000); it comes back holding none', async () => {
    // pushex.js bundles a phoenix.js that reconnects after any close; a quick one here.
    const client = await pushex(node, { token: await jwt('kim') }, { reconnectMs: 50 });
    open.push(client);
    const closes: Array<{ code: number; reason: string }> = [];
    client.client.getSocket().onClose((e) => closes.push({ code: e.code, reason: e.reason }));
    expect((await client.subscribe('px:a')).status).toBe('ok');
    expect((await client.subscribe('px:b')).status).toBe('ok');

    expect((await disconnectUser(node, 'kim')).body).toEqual({ disconnected: 1 });
    await until(() => closes.length > 0, 5000, 'the close');
    expect(closes[0]).toEqual({ code: 1000, reason: 'disconnected' });
    for (const name of ['px:a', 'px:b'])
      expect(client.client.getExistingSubscription(name)?.channel?.state).toBe('closed');
    // The reconnected socket holds no channel: nothing is rejoined, nothing arrives.
    await until(() => client.opens === 2, 5000, 'pushex.js to reconnect');
    await sleep(200);
    expect(await subscribers('px:a')).toBe(0);
    expect(await subscribers('px:b')).toBe(0);
    await push('px:a', 'after');
    await sleep(200);
    expect(client.received).toEqual([]);
  });

  it('Phoenix protocol: a pending join answers unsubscribed then phx_close; a disconnect closes joined and joining topics first', async () => {
    const raw = await rawConnect(`${wsUrl(node)}/websocket?token=${await jwt('lea')}&vsn=2.0.0`);
    open.push({ close: () => raw.ws.close() });
    const gate = gates.arm('gate:phx');
    raw.send(['1', '1', 'gate:phx', 'phx_join', {}]);
    await gate.reached;
    expect((await unsubscribeUser(node, 'gate:phx', 'lea')).body).toEqual({ unsubscribed: 1 });
    gate.open();
    expect(await raw.reply('1')).toEqual({ status: 'error', response: { reason: 'unsubscribed' } });
    await raw.next((f) => f[3] === 'phx_close');
    const after = raw.frames.slice(raw.frames.findIndex((f) => f[1] === '1'));
    expect(after).toEqual([
      [
        '1',
        '1',
        'gate:phx',
        'phx_reply',
        { status: 'error', response: { reason: 'unsubscribed' } },
      ],
      ['1', '1', 'gate:phx', 'phx_close', { reason: 'unsubscribed' }],
    ]);

    // A joined topic, and one whose join is still pending when the user is disconnected.
    raw.send(['2', '2', 'px:joined', 'phx_join', {}]);
    expect((await raw.reply('2')).status).toBe('ok');
    const pending = gates.arm('gate:pending');
    raw.send(['3', '3', 'gate:pending', 'phx_join', {}]);
    await pending.reached;
    const seen = raw.frames.length;
    expect((await disconnectUser(node, 'lea')).body).toEqual({ disconnected: 1 });
    expect(await raw.closed).toEqual({ code: 1000, reason: 'disconnected' });
    pending.open();
    expect(raw.frames.slice(seen)).toEqual([
      ['2', '2', 'px:joined', 'phx_close', { reason: 'disconnected' }],
      ['3', '3', 'gate:pending', 'phx_close', { reason: 'disconnected' }],
    ]);
  });
});
