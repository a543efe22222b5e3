/**
 * A load worker's publisher: pushes over keep-alive HTTP to the nodes in turn, each lane one
 * request in flight, either paced to a rate or as fast as the server answers. Every push's data
 * carries `t`, the moment its request was sent, for the subscribers' latency.
 */
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { epochMs, LatencySample } from './latency-sample.js';
import type { PublishRequest, PublishResult } from './load-messages.js';

const LATENCY_CAPACITY = 100_000;

/** Runs the publishing the request describes and reports what the server answered. */
export async function publish(spec: PublishRequest): Promise<PublishResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: spec.lanes });
  const latency = new LatencySample(LATENCY_CAPACITY);
  const result: PublishResult = {
    requests: 0,
    pushes: 0,
    failures: {},
    pushedTo: {},
    latencies: new Float64Array(0),
    latenciesSeen: 0,
    wallS: 0,
  };
  // Padding that brings `{"t":<13 digits>.<3 digits>,"p":"..."}` (30 bytes without it) to
  // `dataBytes`.
  const padding = 'x'.repeat(Math.max(0, spec.dataBytes - 30));
  const fail = (why: string, n: number): void => {
    result.failures[why] = (result.failures[why] ?? 0) + n;
  };
  let turn = 0;
  const channel = (): string =>
    spec.pick === 'random'
      ? spec.channels[Math.floor(Math.random() * spec.channels.length)]!
      : spec.channels[turn++ % spec.channels.length]!;
  // Paced: request i leaves at start + i / rate, and there are exactly rate x duration of them.
  const total =
    spec.rate === undefined
      ? Infinity
      : Math.round((spec.rate * spec.durationMs) / 1000 / spec.batch);
  const start = performance.now();
  const end = start + spec.durationMs;
  let next = 0;
  let node = 0;

  const lane = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= total) return;
      if (spec.rate !== undefined) {
        const due = start + (i * spec.batch * 1000) / spec.rate;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      } else if (performance.now() >= end) return;
      const t = epochMs().toFixed(3);
      const channels = [...Array(spec.batch).keys()].map(channel);
      const pushes = channels.map(
        (c) => `{"channel":"${c}","event":"bench","data":{"t":${t},"p":"${padding}"}}`,
      );
      const body = spec.batch === 1 ? pushes[0]! : `{"pushes":[${pushes.join(',')}]}`;
      const url = `${spec.urls[node++ % spec.urls.length]!}/api/push${spec.batch === 1 ? '' : '/batch'}`;
      const sent = performance.now();
      try {
        const answer = await post(agent, url, spec.apiKey, body);
        latency.add(performance.now() - sent);
        result.requests += 1;
        if (answer.status !== 200) {
          fail(String(answer.status), channels.length);
          continue;
        }
        if (spec.batch === 1) {
          count(channels[0]!);
          continue;
        }
        const { results } = JSON.parse(answer.body) as { results: Array<{ id?: string }> };
        results.forEach((r, k) =>
          r.id === undefined ? fail('200 error', 1) : count(channels[k]!),
        );
      } catch {
        result.requests += 1;
        fail('error', channels.length);
      }
    }
  };
  const count = (c: string): void => {
    result.pushes += 1;
    result.pushedTo[c] = (result.pushedTo[c] ?? 0) + 1;
  };
  await Promise.all([...Array(spec.lanes).keys()].map(lane));
  result.wallS = (performance.now() - start) / 1000;
  result.latencies = latency.taken();
  result.latenciesSeen = latency.seen;
  agent.destroy();
  return result;
}

/** One POST over the lane's keep-alive connection: status and body. */
function post(
  agent: Agent,
  url: string,
  apiKey: string,
  body: string,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        agent,
        headers: {
          authorization: `Bearer ${apiKey}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.setTimeout(30_000, () => req.destroy(new Error('no answer within 30 s')));
    req.on('error', reject);
    req.end(body);
  });
}
