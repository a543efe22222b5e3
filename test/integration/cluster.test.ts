import { describe, expect, it } from 'vitest';
import { useNodesOnRedisCluster, useRedisCluster } from '../support/cluster.js';
import { connectClient, postJson, token } from '../support/nodes.js';
import { expectExactly } from '../support/assertions.js';

// One Redis in each pub/sub mode, and a real Redis Cluster (three masters, sharded pub/sub).
const setups = [
  {
    name: 'sharded',
    use: () => useRedisCluster({ nodes: 3, config: { redis: { mode: 'sharded' } } }),
  },
  {
    name: 'classic',
    use: () => useRedisCluster({ nodes: 3, config: { redis: { mode: 'classic' } } }),
  },
  { name: 'Redis Cluster, 3 masters', use: () => useNodesOnRedisCluster({ masters: 3, nodes: 3 }) },
];

for (const setup of setups) {
  describe(`cluster delivery over Redis (${setup.name})`, () => {
    const cluster = setup.use();

    it('delivers a push made on node B to a socket on node A', async () => {
      const [a, b] = cluster.nodes;
      const client = await connectClient(a!.url, {
        token: await token({ sub: 'u1', channels: ['user:1'] }),
      });
      try {
        expect(await client.join('user:1')).toMatchObject({ ok: true, channel: 'user:1' });
        const res = await postJson(`${b!.url}/api/push`, {
          channel: 'user:1',
          event: 'hello',
          data: { n: 1 },
        });
        expect(res.status).toBe(200);
        const [msg] = await client.waitFor(1);
        expect(msg).toMatchObject({
          channel: 'user:1',
          event: 'hello',
          data: { n: 1 },
          id: res.body.id,
        });
        expect(typeof msg!.ts).toBe('number');
        expect(typeof msg!.offset).toBe('string');
      } finally {
        client.close();
      }
    });

    it('keeps 100 sequential pushes in order on every node, whichever node accepts them', async () => {
      const clients = await Promise.all(
        cluster.nodes.map(async (n) =>
          connectClient(n.url, { token: await token({ sub: 'u', channels: ['seq:*'] }) }),
        ),
      );
      try {
        for (const c of clients) expect(await c.join('seq:order')).toMatchObject({ ok: true });
        const ids: string[] = [];
        for (let i = 0; i < 100; i++) {
          const res = await postJson(`${cluster.nodes[i % cluster.nodes.length]!.url}/api/push`, {
            channel: 'seq:order',
            event: 'n',
            data: i,
          });
          expect(res.status).toBe(200);
          ids.push(res.body.id as string);
        }
        for (const c of clients) {
          const got = await c.waitFor(100);
          expect(got.map((m) => m.data)).toEqual([...Array(100).keys()]);
          expect(got.map((m) => m.id)).toEqual(ids);
        }
      } finally {
        for (const c of clients) c.close();
      }
    });

    it('delivers a multi-channel push once per channel, duplicates removed, order kept', async () => {
      const client = await connectClient(cluster.nodes[0]!.url, {
        token: await token({ sub: 'u', channels: ['multi:*'] }),
      });
      try {
        await client.join('multi:a');
        await client.join('multi:b');
        const res = await postJson(`${cluster.nodes[2]!.url}/api/push`, {
          channel: ['multi:b', 'multi:a', 'multi:b'],
          event: 'e',
          data: null,
        });
        expect(res.status).toBe(200);
        expect(res.body.channel).toEqual(['multi:b', 'multi:a']);
        const got = await client.waitFor(2);
        expect(got.map((m) => m.channel).sort()).toEqual(['multi:a', 'multi:b']);
        const delivered = client.messages.slice(0, 2);
        // Nothing more on either channel: a sentinel on each, after which nothing else came.
        await expectExactly(cluster.nodes[2]!, client, 'multi:a', 2);
        await expectExactly(cluster.nodes[2]!, client, 'multi:b', 3);
        expect(new Set(delivered.map((m) => m.id))).toEqual(new Set([res.body.id]));
      } finally {
        client.close();
      }
    });

    it('keeps live order equal to history order under concurrent publishers on several nodes', async () => {
      const clients = await Promise.all(
        cluster.nodes.map(async (n) =>
          connectClient(n.url, { token: await token({ sub: 'u', channels: ['race'] }) }),
        ),
      );
      try {
        for (const c of clients) await c.join('race');
        const total = 150;
        await Promise.all(
          [...Array(total).keys()].map((i) =>
            postJson(`${cluster.nodes[i % cluster.nodes.length]!.url}/api/push`, {
              channel: 'race',
              event: 'n',
              data: i,
            }),
          ),
        );
        const sequences = await Promise.all(clients.map((c) => c.waitFor(total)));
        for (const got of sequences) {
          const ns = got.map((m) => Number(m.offset!.split(':')[1]));
          expect(ns).toEqual([...ns].sort((x, y) => x - y));
          expect(new Set(ns).size).toBe(total);
          expect(got.map((m) => m.id)).toEqual(sequences[0]!.map((m) => m.id));
        }
      } finally {
        for (const c of clients) c.close();
      }
    });
  });
}
