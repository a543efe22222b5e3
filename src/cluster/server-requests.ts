import type { Server } from 'socket.io';
import { unavailable } from '../errors.js';

/**
 * How long the other nodes get to answer a request. The Redis adapters give up after 5 s too
 * (their own fixed timeout), answering with what they have; this one is a backstop for the paths
 * where they never call back (the classic adapter swallows a failed node count).
 */
export const REQUEST_TIMEOUT_MS = 5_250;

/** What the other nodes answered: each one's answer, and whether every node answered in time. */
export interface NodeAnswers<T> {
  answers: T[];
  complete: boolean;
}

/**
 * Answers the other nodes' server-side requests named `event` on this node with what `answer`
 * returns for the request's arguments (Socket.IO hands the acknowledgement over last).
 */
export function answerRequests(
  io: Server,
  event: string,
  answer: (...args: unknown[]) => unknown,
): void {
  // Listeners of the main namespace: that is where the adapter emits server-side events.
  io.of('/').on(event, (...args: unknown[]) => {
    const ack = args.pop();
    if (typeof ack === 'function') (ack as (value: unknown) => void)(answer(...args));
  });
}

/**
 * Asks every other node of the cluster (through the adapter's server-side requests, which the
 * Redis adapter carries to every node) and resolves with their answers. Never rejects once sent:
 * a node that does not answer in time leaves `complete` false. Callers decide what that means
 * (a count may leave it out; an action must say it may be partial).
 *
 * `ready` is the backend's `clusterReady`: undefined on a single node (nobody to ask: no answers,
 * complete); false while the cluster bus is away, which throws `503 unavailable` at once, before
 * the caller does anything.
 */
export function askOtherNodes<T>(
  io: Server,
  ready: (() => boolean) | undefined,
  event: string,
  args: readonly unknown[],
): Promise<NodeAnswers<T>> {
  if (!ready) return Promise.resolve({ answers: [], complete: true });
  if (!ready()) throw unavailable('cluster');
  return new Promise((resolve) => {
    let done = false;
    const finish = (result: NodeAnswers<T>): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(result);
    };
    const timer = setTimeout(() => finish({ answers: [], complete: false }), REQUEST_TIMEOUT_MS);
    const ack = (err: Error | null, responses: T[] | undefined): void =>
      finish({ answers: responses ?? [], complete: !err });
    // The adapter directly rather than `io.serverSideEmit`, which drops the promise: its request
    // path awaits a Redis command (the node count), and a rejection there must not go unhandled.
    const adapter = io.of('/').adapter as unknown as {
      serverSideEmit(packet: unknown[]): Promise<unknown> | void;
    };
    try {
      Promise.resolve(adapter.serverSideEmit([event, ...args, ack])).catch(() =>
        finish({ answers: [], complete: false }),
      );
    } catch {
      finish({ answers: [], complete: false });
    }
  });
}
