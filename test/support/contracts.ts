import { setTimeout as sleep } from 'node:timers/promises';
import { beforeAll, it, type TestFunction } from 'vitest';
import type { Bus } from '../../src/delivery/bus.js';
import type { ChannelMessage } from '../../src/delivery/message.js';

/**
 * Shared pieces of the contract suites (test/contracts): an injectable clock, a bounded poll, what
 * a bus harness is, and the way an implementation declares a contract point it is known to break.
 * Light on purpose (no socket.io, no Redis): the memory suites import it too.
 */

/** A clock tests move by hand; `now` is what implementations are given. */
export class ManualClock {
  constructor(private ms = 1_700_000_000_000) {}
  readonly now = (): number => this.ms;
  advance(ms: number): void {
    this.ms += ms;
  }
}

/**
 * Polls `check` every 25 ms until it holds; rejects after `timeoutMs` naming `what`. For waiting
 * on real time (a Redis key's TTL) with a bound, never a fixed sleep.
 */
export async function eventually(
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

export { sleep };

/**
 * Contract points an implementation is known to break, by test title, each with the reason
 * (kept next to the implementation's test file so the report stays with the code that fails).
 * Those cases run as `it.fails`: they pass while the implementation still breaks the point and
 * fail loudly once it is fixed, so the entry is then removed.
 */
export type KnownFailures = Readonly<Record<string, string>>;

/**
 * The contract's `it`: `it.fails` for a title the implementation is known to break. Called inside
 * the contract's describe block; before its cases run it checks that every known failure names a
 * case (a typo, or a renamed case, fails the suite), so an entry never silently stops applying.
 */
export function contractCases(
  suite: string,
  known: KnownFailures = {},
): (title: string, fn: TestFunction) => void {
  const titles = new Set<string>();
  beforeAll(() => {
    const unknown = Object.keys(known).filter((t) => !titles.has(t));
    if (unknown.length > 0)
      throw new Error(`${suite}: known failures name no contract case: ${unknown.join('; ')}`);
  });
  return (title, fn) => {
    titles.add(title);
    if (known[title] !== undefined) it.fails(title, fn);
    else it(title, fn);
  };
}

/** What a bus contract suite works with. */
export interface BusHarness {
  bus: Bus;
  /**
   * Messages that reached this node's subscriptions (for channels passed to `listen`), in the
   * order they arrived.
   */
  received: ChannelMessage[];
  /** Subscribes this node to a channel; resolves once its messages reach `received`. */
  listen(channel: string): Promise<void>;
  /** The clock the implementation reads, if it takes one; absent: real time. */
  clock?: ManualClock;
  close(): Promise<void>;
}
