import { describe, expect, it } from 'vitest';
import { entryOf, occupantOf, type LocalEdge } from '../../src/webhooks/events.js';
import { Occupancy } from '../../src/webhooks/occupancy.js';
import { roomOf } from '../../src/delivery/names.js';

describe('webhook occupancy on one node', () => {
  it('reports only first-in and last-out edges, per channel and per member', () => {
    const edges: LocalEdge[] = [];
    const occupancy = new Occupancy((e) => edges.push(e));
    const room = roomOf('team:7');
    occupancy.joined(room, 'u1');
    occupancy.joined(room, 'u1');
    occupancy.joined(room, 'u2');
    occupancy.joined('not-a-channel-room', 'u1');
    occupancy.left(room, 'u1');
    const brief = () => edges.map((e) => `${e.kind} ${e.edge} ${e.userId ?? ''}`.trim());
    expect(brief()).toEqual(['channel up', 'member up u1', 'member up u2']);
    occupancy.left(room, 'u1');
    occupancy.left(room, 'u2');
    expect(brief().slice(3)).toEqual(['member down u1', 'member down u2', 'channel down']);
    expect(occupancy.current(1)).toEqual([]);
  });

  it('states what it holds, channels first; entries round-trip, whatever the user id holds', () => {
    const occupancy = new Occupancy(() => undefined);
    occupancy.joined(roomOf('a'), 'x\0y');
    expect(occupancy.current(5).map((e) => [e.kind, e.userId])).toEqual([
      ['channel', undefined],
      ['member', 'x\0y'],
    ]);
    for (const o of [
      { kind: 'channel' as const, channel: 'a:b' },
      { kind: 'member' as const, channel: 'a:b', userId: 'x\0y' },
    ])
      expect(occupantOf(entryOf(o))).toEqual(o);
  });
});
