import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '../support/assertions.js';
import { useNodesOnRedisCluster } from '../support/cluster.js';
import type { TestClient } from '../support/nodes.js';
import {
  memberOf,
  startWebhookReceiver,
  type WebhookReceiver,
} from '../support/webhook-receiver.js';

const SECRET = 'webhook-test-secret-0123456789';

/**
 * Webhooks on a real Redis Cluster (three masters): every webhook key shares one hash tag, so the
 * scripts run on one slot whichever shard holds the channels; transitions still come once.
 */
describe('webhooks on a Redis Cluster', () => {
  let receiver: WebhookReceiver;
  // Filled in before the nodes start (this hook runs before the cluster's).
  const webhooks = { url: 'http://127.0.0.1:9/unset', secret: SECRET, vacateDelayMs: 300 };
  beforeAll(async () => {
    receiver = await startWebhookReceiver(SECRET);
    webhooks.url = receiver.url;
  });
  const cluster = useNodesOnRedisCluster({ masters: 3, nodes: 2, config: { webhooks } });
  afterAll(async () => {
    await receiver?.stop();
  });

  it('occupied, added, removed and vacated once each, for channels on every shard', async () => {
    const channels = ['whc:a', 'whc:b', 'whc:c', 'whc:d', 'whc:e', 'whc:f'];
    const sockets: TestClient[] = [];
    for (const [i, channel] of channels.entries()) {
      sockets.push(await memberOf(cluster.nodes[0]!.url, 'u', channel));
      sockets.push(await memberOf(cluster.nodes[1]!.url, i % 2 ? 'u' : 'v', channel));
    }
    for (const s of sockets) s.close();
    const expected = (i: number) =>
      i % 2
        ? ['channel_occupied', 'member_added u', 'member_removed u', 'channel_vacated']
        : [
            'channel_occupied',
            'member_added u',
            'member_added v',
            'member_removed u',
            'member_removed v',
            'channel_vacated',
          ];
    const of = (channel: string) =>
      receiver
        .accepted()
        .filter((e) => e.channel === channel)
        .map((e) => (e.userId === undefined ? e.name : `${e.name} ${e.userId}`));
    await until(
      () => channels.every((c, i) => of(c).length >= expected(i).length),
      10_000,
      'every channel occupied and vacated',
    );
    await new Promise((r) => setTimeout(r, 800));
    for (const [i, c] of channels.entries()) {
      const got = of(c);
      expect(got[0]).toBe('channel_occupied');
      expect(got.at(-1)).toBe('channel_vacated');
      expect([...got].sort()).toEqual([...expected(i)].sort());
    }
    expect(receiver.requests.every((r) => r.signed)).toBe(true);
  });
});
