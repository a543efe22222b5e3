import { LocalPushLimiter } from '../../src/backend/memory/local-push-limiter.js';
import { ManualClock } from '../support/contracts.js';
import { pushLimiterContract } from './push-limiter.contract.js';

pushLimiterContract('memory (token bucket)', ({ perSecond, burst }) => {
  const clock = new ManualClock();
  return Promise.resolve({
    limiter: new LocalPushLimiter(perSecond, burst, clock.now),
    clock,
    close: () => Promise.resolve(),
  });
});
