import { MemoryBus } from '../../src/backend/memory/memory-bus.js';
import type { ChannelMessage } from '../../src/delivery/message.js';
import { roomOf } from '../../src/delivery/names.js';
import { ManualClock } from '../support/contracts.js';
import { busContract } from './bus.contract.js';

busContract('memory', (history) => {
  const clock = new ManualClock();
  const rooms = new Set<string>();
  const received: ChannelMessage[] = [];
  const bus = new MemoryBus(
    (room, message) => {
      if (rooms.has(room)) received.push(message);
    },
    history,
    { maxBytes: Number.POSITIVE_INFINITY, now: clock.now },
  );
  return Promise.resolve({
    bus,
    received,
    clock,
    listen: (channel) => {
      rooms.add(roomOf(channel));
      return Promise.resolve();
    },
    close: () => bus.close(),
  });
});
