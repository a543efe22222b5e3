import { Encoder } from 'socket.io-parser';
import { Adapter } from 'socket.io-adapter';
import { describe, expect, it } from 'vitest';
import type { ChannelMessage } from '../../src/delivery/message.js';
import { writeFramesDirectly } from '../../src/realtime/direct-frames.js';
import { observeBroadcasts, type BroadcastObserver } from '../../src/realtime/observe.js';

/**
 * The two hooks on socket.io-adapter's in-memory adapter, in the order src/node-assembly.ts
 * installs them: Socket.IO's encoding is deferred to the first engine.io socket a broadcast
 * reaches (direct-frames.ts), and the observer sees each broadcast after its delivery
 * (observe.ts). Sockets here are engine.io sockets on long-polling: each takes Socket.IO's path.
 */
function adapterWithHooks(observer: BroadcastObserver) {
  const sockets = new Map<string, unknown>();
  const encoder = new Encoder();
  let encodes = 0;
  const counted = {
    encode: (packet: unknown) => {
      encodes++;
      return encoder.encode(packet as Parameters<Encoder['encode']>[0]);
    },
  };
  const adapter = new Adapter({ name: '/', server: { encoder: counted }, sockets });
  writeFramesDirectly(adapter);
  observeBroadcasts(adapter, observer);
  const received = new Map<string, unknown[][]>();
  const join = (id: string, room: string): void => {
    received.set(id, []);
    sockets.set(id, {
      id,
      conn: { readyState: 'open', writeBuffer: [], transport: { name: 'polling', writable: true } },
      client: { writeToEngine: (packets: unknown[]) => received.get(id)!.push([...packets]) },
    });
    void adapter.addAll(id, new Set([room]));
  };
  const broadcast = (room: string, message: ChannelMessage): void =>
    adapter.broadcast({ type: 2, data: ['msg', message], nsp: '/' }, { rooms: new Set([room]) });
  return { adapter, join, broadcast, received, encodes: () => encodes };
}

const msg = (id: string): ChannelMessage => ({ channel: 'c', event: 'e', data: id, id, ts: 0 });

describe('broadcast hooks', () => {
  it('encodes a broadcast once for its engine.io sockets, none for an empty room', () => {
    const seen: string[] = [];
    const hooks = adapterWithHooks((room, members) => seen.push(`${room}:${members}`));
    hooks.join('s1', 'a');
    hooks.join('s2', 'a');
    hooks.broadcast('a', msg('1'));
    expect(hooks.encodes()).toBe(1);
    // Each socket got the whole packet list, the same one.
    const [first] = hooks.received.get('s1')!;
    expect(first).toHaveLength(1);
    expect(String(first![0])).toContain('"msg"');
    expect(hooks.received.get('s2')).toEqual([first]);
    hooks.broadcast('nobody', msg('2'));
    expect(hooks.encodes()).toBe(1);
    expect(seen).toEqual(['a:2', 'nobody:0']);
  });

  it('an observer that broadcasts and throws leaves no broadcast held for the next one', async () => {
    let nested = true;
    const hooks = adapterWithHooks((room) => {
      if (room !== 'a' || !nested) return;
      nested = false;
      hooks.broadcast('b', msg('inner'));
      throw new Error('observer failed');
    });
    hooks.join('s1', 'a');
    hooks.join('s2', 'b');
    expect(() => hooks.broadcast('a', msg('outer'))).toThrow('observer failed');
    const text = (id: string) => hooks.received.get(id)!.map((packets) => String(packets[0]));
    // Both delivered whole, each to its own room.
    expect(text('s1')).toEqual([expect.stringContaining('"outer"')]);
    expect(text('s2')).toEqual([expect.stringContaining('"inner"')]);
    // The next broadcast and a plain apply (what fetchSockets does) see nothing held.
    hooks.broadcast('a', msg('next'));
    expect(text('s1')).toEqual([
      expect.stringContaining('"outer"'),
      expect.stringContaining('"next"'),
    ]);
    const fetched = await hooks.adapter.fetchSockets({ rooms: new Set(['b']), except: new Set() });
    const visited = fetched.map((socket) => (socket as unknown as { id: string }).id);
    expect(visited).toEqual(['s2']);
    expect(text('s2')).toHaveLength(1);
  });
});
