import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signWebhook, verifyWebhook } from '../../src/webhooks/signature.js';

const SECRET = 'webhook-secret-0123456789';
const BODY = '{"events":[{"id":"1-0","name":"channel_occupied","channel":"c","ts":1}]}';

describe('webhook signatures', () => {
  it('is sha256= and the hex HMAC of "<timestamp>.<body>" (the README recipe)', () => {
    const expected = createHmac('sha256', SECRET).update(`1764475200.${BODY}`).digest('hex');
    expect(signWebhook(SECRET, '1764475200', BODY)).toBe(`sha256=${expected}`);
  });

  it('verifies a genuine request, and refuses any change, another secret or an old timestamp', () => {
    const nowS = 1764475200;
    const timestamp = String(nowS);
    const signature = signWebhook(SECRET, timestamp, BODY);
    const check = (
      over: Partial<{ secret: string; ts: string; sig: string; body: string }>,
      at = nowS,
    ) =>
      verifyWebhook(
        over.secret ?? SECRET,
        { timestamp: over.ts ?? timestamp, signature: over.sig ?? signature },
        over.body ?? BODY,
        { nowS: at },
      );
    expect(check({})).toBe(true);
    expect(check({ body: BODY.replace('"c"', '"d"') })).toBe(false);
    expect(check({ secret: 'another-secret-0123456789' })).toBe(false);
    expect(check({ ts: String(nowS - 1) })).toBe(false);
    expect(check({ sig: signature.slice(0, -1) })).toBe(false);
    expect(check({}, nowS + 301)).toBe(false);
    expect(verifyWebhook(SECRET, { timestamp: undefined, signature }, BODY)).toBe(false);
  });
});
