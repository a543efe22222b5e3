import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'vitest';
import type { WebhookEvent } from '../../src/webhooks/events.js';
import { verifyWebhook } from '../../src/webhooks/signature.js';
import { connectClient, token, type TestClient } from './nodes.js';

/** One request the receiver got. */
export interface ReceivedRequest {
  events: WebhookEvent[];
  /** The raw body, byte for byte as sent (what a signature is computed over). */
  body: string;
  /** `performance.now()` when the request arrived (for gaps between attempts). */
  receivedAt: number;
  signed: boolean;
  timestamp: string | undefined;
  signature: string | undefined;
}

/** A real HTTP webhook receiver on loopback that records every request and checks its signature. */
export interface WebhookReceiver {
  url: string;
  requests: ReceivedRequest[];
  /** Events of the requests it answered 2xx, in the order received. */
  accepted(): WebhookEvent[];
  /**
   * From now on answer this status (503: "down"; 0: never answer, as a hung receiver); with
   * `requests`, only the next that many, then 200 again.
   */
  answer(status: number, requests?: number): void;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export async function startWebhookReceiver(secret: string): Promise<WebhookReceiver> {
  let status = 200;
  let statusLeft = Infinity;
  const requests: ReceivedRequest[] = [];
  const acceptedEvents: WebhookEvent[] = [];
  const server: Server = createServer((req, res) => {
    const receivedAt = performance.now();
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const timestamp = req.headers['x-pushcast-timestamp'] as string | undefined;
      const signature = req.headers['x-pushcast-signature'] as string | undefined;
      const { events } = JSON.parse(body) as { events: WebhookEvent[] };
      const signed = verifyWebhook(secret, { timestamp, signature }, body);
      requests.push({ events, body, receivedAt, signed, timestamp, signature });
      const answer = statusLeft-- > 0 ? status : 200;
      if (answer === 0) return;
      if (answer < 300) acceptedEvents.push(...events);
      res.writeHead(answer).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const stop = () => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return {
    url: `http://127.0.0.1:${port}/hooks`,
    requests,
    accepted: () => acceptedEvents,
    answer: (s, n = Infinity) => {
      status = s;
      statusLeft = n;
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/** A socket of `user` on the node at `url`, joined to `channel` (its token allows `<prefix>:*`). */
export async function memberOf(url: string, user: string, channel: string): Promise<TestClient> {
  const prefix = channel.slice(0, channel.indexOf(':') + 1);
  const client = await connectClient(url, {
    token: await token({ sub: user, channels: [`${prefix}*`] }),
  });
  expect(await client.join(channel)).toMatchObject({ ok: true });
  return client;
}
