import { MemoryIdempotencyStore } from '../../src/backend/memory/memory-idempotency.js';
import { ManualClock } from '../support/contracts.js';
import { idempotencyContract } from './idempotency.contract.js';

idempotencyContract('memory', (ttlS) => {
  const clock = new ManualClock();
  const store = new MemoryIdempotencyStore(ttlS, Number.POSITIVE_INFINITY, clock.now);
  return Promise.resolve({ store, clock, close: () => Promise.resolve() });
});
