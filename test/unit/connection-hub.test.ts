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
});
