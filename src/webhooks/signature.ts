import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * The signature of a webhook request: `sha256=` and the hex HMAC-SHA256, keyed with the webhook
 * secret, of `<X-Pushcast-Timestamp>.<raw body>`. The timestamp (Unix seconds) is signed with the
 * body so a captured request cannot be replayed later under a fresh timestamp.
 */
export function signWebhook(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/**
 * Checks a webhook request as a receiver should: the signature over the raw body (compared in
 * constant time) and a timestamp within `toleranceS` of now.
 */
export function verifyWebhook(
  secret: string,
  headers: { timestamp: string | undefined; signature: string | undefined },
  rawBody: string,
  options: { toleranceS?: number; nowS?: number } = {},
): boolean {
  const { timestamp, signature } = headers;
  if (timestamp === undefined || signature === undefined || !/^\d+$/.test(timestamp)) return false;
  const nowS = options.nowS ?? Math.floor(Date.now() / 1000);
  if (Math.abs(nowS - Number(timestamp)) > (options.toleranceS ?? 300)) return false;
  const expected = Buffer.from(signWebhook(secret, timestamp, rawBody));
  const given = Buffer.from(signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}
