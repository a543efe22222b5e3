import { describe, expect, it } from 'vitest';
import { MemoryBus } from '../../src/backend/memory/memory-bus.js';
import { HistoryPolicy } from '../../src/delivery/history-policy.js';
import type { PreparedMessage } from '../../src/delivery/message.js';
import { PushPipeline, type PushRequest } from '../../src/delivery/pipeline.js';
import { PushIdGenerator } from '../../src/delivery/push-id.js';
import { unavailable } from '../../src/errors.js';

// How a batch's pushes reach the bus (PushPipeline.pushMany): together where a publish is all or
// nothing, never more than 100 messages at a time, and one by one where it is not (a Redis
// Cluster, where a failed publish may have published part of what it was given).

/** The memory bus, counting its publish calls, failing every call that names `failOn`. */
class CountingBus extends MemoryBus {
  readonly calls: string[][] = [];
  constructor(
    readonly allOrNothingSetting: boolean,
    private readonly failOn?: string,
  ) {
    super(() => undefined, new HistoryPolicy({ size: 10, ttlS: 60, channels: [] }));
  }
  override get allOrNothing(): boolean {
    return this.allOrNothingSetting;
  }
  override publish(messages: PreparedMessage[]): Promise<Array<string | undefined>> {
    this.calls.push(messages.map((m) => m.channel));
    if (messages.some((m) => m.channel === this.failOn)) return Promise.reject(unavailable('bus'));
    return super.publish(messages);
  }
}

const push = (channels: string[]): PushRequest => ({
  channels,
  event: 'e',
  data: 1,
  dataJson: '1',
});

function pipelineOver(bus: CountingBus): PushPipeline {
  return new PushPipeline(bus, new PushIdGenerator(), 10_000);
}

describe('pipeline: a batch handed to the bus', () => {
  it('goes in one publish where the bus is all or nothing, in order, with each push its offset', async () => {
    const bus = new CountingBus(true);
    const pipeline = pipelineOver(bus);
    const ids = new PushIdGenerator();
    const items = [0, 1, 2].map(() => ({ request: push(['c:1']), identity: ids.next() }));
    const outcomes = await pipeline.pushMany(items);
    expect(bus.calls).toEqual([['c:1', 'c:1', 'c:1']]);
    expect(outcomes.map((o) => o.result?.id)).toEqual(items.map((i) => i.identity.id));
    expect(outcomes.map((o) => o.result?.offsets['c:1']?.split(':')[1])).toEqual(['1', '2', '3']);
    expect(pipeline.inflightCount).toBe(0);
  });

  it('never hands over more than 100 messages at once (a push with more goes alone)', async () => {
    const bus = new CountingBus(true);
    const ids = new PushIdGenerator();
    const wide = Array.from({ length: 60 }, (_, i) => `w:${i}`);
    const items = [wide, wide, ['a'], Array.from({ length: 120 }, (_, i) => `x:${i}`)].map(
      (channels) => ({ request: push(channels), identity: ids.next() }),
    );
    const outcomes = await pipelineOver(bus).pushMany(items);
    expect(bus.calls.map((c) => c.length)).toEqual([60, 61, 120]);
    expect(outcomes.every((o) => o.result !== undefined)).toBe(true);
  });

  it('on a bus that is not all or nothing, fails only the push whose publish failed', async () => {
    const bus = new CountingBus(false, 'bad');
    const pipeline = pipelineOver(bus);
    const ids = new PushIdGenerator();
    const items = [['ok:1'], ['bad'], ['ok:2']].map((channels) => ({
      request: push(channels),
      identity: ids.next(),
    }));
    const outcomes = await pipeline.pushMany(items);
    expect(bus.calls).toEqual([['ok:1'], ['bad'], ['ok:2']]);
    expect(outcomes.map((o) => (o.result ? 'ok' : (o.error as { code?: string }).code))).toEqual([
      'ok',
      'unavailable',
      'ok',
    ]);
    expect(pipeline.inflightCount).toBe(0);
  });

  it('on an all-or-nothing bus, fails every push of the failed hand-over, and nothing else', async () => {
    const bus = new CountingBus(true, 'bad');
    const ids = new PushIdGenerator();
    const wide = Array.from({ length: 99 }, (_, i) => `w:${i}`);
    const items = [[...wide, 'bad'], ['ok:1'], ['ok:2']].map((channels) => ({
      request: push(channels),
      identity: ids.next(),
    }));
    const outcomes = await pipelineOver(bus).pushMany(items);
    expect(bus.calls.map((c) => c.length)).toEqual([100, 2]);
    expect(outcomes.map((o) => o.result !== undefined)).toEqual([false, true, true]);
  });
});
