import { describe, expect, it } from 'vitest';
import type { ChannelMessage } from '../../src/delivery/message.js';
import { ConnectionHub, type HubMember } from '../../src/realtime/connection-hub.js';

/** A room holder that records which rooms are held. */
function fakeHolder() {
  const held = new Set<string>();
  const calls: string[] = [];
  const holder = {
    hold: (room: string) => {
      calls.push(`hold ${room}`);
      held.add(room);
    },
    release: (room: string) => {
      calls.push(`release ${room}`);
      held.delete(room);
    },
  };
  return { holder, held, calls };
}

/** An encoder that counts its calls. */
function countingEncoder(tag: string) {
  const counter = { calls: 0 };
  const encode = (message: ChannelMessage): Buffer => {
    counter.calls += 1;
    return Buffer.from(`${tag}:${JSON.stringify(message)}`);
  };
  return { encode, counter };
}

describe('Connection hub', () => {
  it('encodes a message once per protocol and writes the same buffer to each member of it', () => {
    const { holder, held, calls } = fakeHolder();
    const hub = new ConnectionHub<HubMember>(holder);
    const phx = countingEncoder('phx');
    const sio = countingEncoder('sio');
    const writes = new Map<string, Buffer[]>();
    const members: HubMember[] = [0, 1, 2, 3, 4].map((i) => {
      const [transport, encode] = i % 2 === 0 ? ['phoenix', phx.encode] : ['websocket', sio.encode];
      const id = `u${i}`;
      writes.set(id, []);
      return { userId: id, transport, encode, write: (frame) => void writes.get(id)!.push(frame) };
    });
    for (const m of members) {
      hub.register(m);
      hub.add('{c}', m);
    }
    expect(hub.sizeOf('phoenix')).toBe(3);
    expect(hub.sizeOf('websocket')).toBe(2);
    // Held once, however many members.
    expect(calls).toEqual(['hold {c}']);
    const message: ChannelMessage = { channel: 'c', event: 'e', data: 1, id: 'x', ts: 1 };
    hub.deliver('{c}', message);
    // Another room's message reaches nobody here.
    hub.deliver('{other}', message);
    expect(phx.counter.calls).toBe(1);
    expect(sio.counter.calls).toBe(1);
    const frames = [...writes.values()].map((w) => {
      expect(w).toHaveLength(1);
      return w[0]!;
    });
    // One buffer per protocol, shared by its members.
    expect(new Set(frames).size).toBe(2);
    expect(frames[0]!.toString()).toMatch(/^phx:/);
    expect(frames[1]!.toString()).toMatch(/^sio:/);
    expect(hub.count('{c}')).toBe(5);
    expect([...hub.users('{c}')]).toEqual(['u0', 'u1', 'u2', 'u3', 'u4']);
    for (const m of members) hub.unregister(m, ['{c}']);
    expect(calls).toEqual(['hold {c}', 'release {c}']);
    expect(held.size).toBe(0);
    expect(hub.size).toBe(0);
    expect(hub.sizeOf('phoenix')).toBe(0);
    expect(hub.sizeOf('websocket')).toBe(0);
  });

  it('counts a member once however often it is registered or unregistered', () => {
    const hub = new ConnectionHub<HubMember>(fakeHolder().holder);
    const member: HubMember = {
      userId: undefined,
      transport: 'websocket',
      encode: () => Buffer.alloc(0),
      write: () => {},
    };
    hub.register(member);
    hub.register(member);
    expect(hub.sizeOf('websocket')).toBe(1);
    hub.unregister(member, []);
    hub.unregister(member, []);
    expect(hub.sizeOf('websocket')).toBe(0);
    expect(hub.size).toBe(0);
  });

  it('holds a room of one as it is and of two or more as a set, the same to every caller', () => {
    const { holder, calls } = fakeHolder();
    const events: string[] = [];
    const hub = new ConnectionHub<HubMember>(holder, {
      joined: (room, userId) => events.push(`joined ${room} ${userId}`),
      left: (room, userId) => events.push(`left ${room} ${userId}`),
    });
    const { encode } = countingEncoder('sio');
    const writes: string[] = [];
    const member = (id: string): HubMember => ({
      userId: id,
      transport: 'websocket',
      encode,
      write: () => void writes.push(id),
    });
    const [a, b, c] = [member('a'), member('b'), member('c')];
    const message: ChannelMessage = { channel: 'r', event: 'e', data: 1, id: 'x', ts: 1 };
    const deliveredTo = (): string[] => {
      writes.length = 0;
      hub.deliver('{r}', message);
      return [...writes].sort();
    };

    hub.add('{r}', a);
    hub.add('{r}', a); // again: nothing changes
    hub.remove('{r}', b); // not a member: nothing changes
    expect([hub.count('{r}'), deliveredTo()]).toEqual([1, ['a']]);
    hub.add('{r}', b); // one -> two
    hub.add('{r}', b);
    expect([hub.count('{r}'), deliveredTo()]).toEqual([2, ['a', 'b']]);
    hub.add('{r}', c);
    hub.remove('{r}', a);
    hub.remove('{r}', b); // back to one
    hub.remove('{r}', b);
    expect([hub.count('{r}'), deliveredTo()]).toEqual([1, ['c']]);
    hub.add('{r}', a); // one -> two again
    expect([hub.count('{r}'), deliveredTo()]).toEqual([2, ['a', 'c']]);
    hub.remove('{r}', c);
    hub.remove('{r}', a); // empty
    expect([hub.count('{r}'), deliveredTo(), [...hub.rooms()]]).toEqual([0, [], []]);
    // Held while it had members, released once when the last left; one event per change.
    expect(calls).toEqual(['hold {r}', 'release {r}']);
    expect(events).toEqual([
      'joined {r} a',
      'joined {r} b',
      'joined {r} c',
      'left {r} a',
      'left {r} b',
      'joined {r} a',
      'left {r} c',
      'left {r} a',
    ]);
  });
});
