/** What a step run against a join's deadline ({@link Within}) gave: its value, or undefined. */
export type InTime<T> = { value: T } | undefined;

/** How a step may be run: `repeatable` when running it twice is as good as once (a read). */
export interface StepOptions {
  repeatable?: boolean;
}

/** Runs a Redis-dependent step of a join, bounded by the join's deadline. */
export type Within = <T>(step: () => Promise<T>, options?: StepOptions) => Promise<InTime<T>>;

/**
 * How far past the deadline a step's failure may come before it is taken for this node's own
 * stall. Timers fire only once the event loop is free, and in each turn of the loop Node runs
 * the timers before it reads the sockets: after a stall (a storm of reconnects, a long task) the
 * deadline's timer, and the timeouts of the step's own Redis commands, fire before a reply that
 * came in meanwhile is read.
 */
const STALL_MS = 20;

/**
 * One deadline, `ms` from now, for every Redis-dependent step of a join: a step gives its value,
 * or undefined when it failed or the deadline came first (Redis down, paused, or slow); a step
 * not started by then is never started. Nothing waits for a step that came too late: its result
 * is dropped, so the join goes on (and answers) at once, and no late work follows its answer.
 *
 * A stall of the node itself says nothing about Redis. When the deadline's timer fires, the
 * verdict waits for the sockets to be read once (a reply that came in during a stall counts).
 * The first time a verdict comes more than {@link STALL_MS} after the deadline (the timer fired
 * late, or the step failed late: its own command timeout fired in the stall), the deadline starts
 * again from that moment, once per join: a step still running goes on, and a repeatable step
 * that failed in the stall (or while the deadline was started again) is run once more. A join
 * so answers at the latest one timeout after the end of its first stall past the deadline.
 * Without this, a recovering join on a busy node answered `recovered: false` although history
 * held every message it missed.
 */
export function deadline(
  ms: number,
  /** Told of every step that failed or came too late (a swallowed failure leaves a trace). */
  missed: (why: 'failed' | 'late', err?: unknown) => void = () => {},
): Within {
  let end = performance.now() + ms;
  let stretched = false;
  /** True, once per join, when this moment is a stall's end: the deadline starts again. */
  const afterStall = (): boolean => {
    const now = performance.now();
    if (stretched || now - end <= STALL_MS) return false;
    stretched = true;
    end = now + ms;
    return true;
  };
  /** `retryOf`: the failure of the first run, when this is the second. */
  const run = <T>(
    step: () => Promise<T>,
    repeatable: boolean,
    retryOf?: { err: unknown },
  ): Promise<InTime<T>> => {
    if (end - performance.now() <= 0 && !afterStall()) {
      missed('late', retryOf?.err);
      return Promise.resolve(undefined);
    }
    // A stall ended while this step ran (the timer of this or another step saw it): a failure
    // of the step is the stall's too (its commands' timeouts fired in the same turn).
    const stretchedBefore = stretched;
    return new Promise<InTime<T>>((resolve) => {
      let over = false;
      let timer: NodeJS.Timeout | undefined;
      /** This run is over: its timer and any late outcome of the step are ignored from now. */
      const stop = (): void => {
        over = true;
        clearTimeout(timer);
      };
      const done = (result: InTime<T>): void => {
        stop();
        resolve(result);
      };
      const verdict = (): void => {
        if (over) return;
        if (afterStall()) return arm();
        missed('late', retryOf?.err);
        done(undefined);
      };
      const arm = (): void => {
        // Fired: the verdict after this turn's reads (Node reads sockets after the timers).
        timer = setTimeout(() => setImmediate(verdict), Math.max(1, end - performance.now()));
      };
      const failed = (err: unknown): void => {
        if (over) return;
        if (repeatable && !retryOf && (afterStall() || stretched !== stretchedBefore)) {
          stop();
          return void run(step, repeatable, { err }).then(resolve);
        }
        missed('failed', err);
        done(undefined);
      };
      arm();
      let running: Promise<T>;
      try {
        running = step();
      } catch (err) {
        return failed(err);
      }
      running.then((value) => {
        if (!over) done({ value });
      }, failed);
    });
  };
  return (step, options) => run(step, options?.repeatable === true);
}

/**
 * An answer decided at the moment it is sent: the transport settles it and sends it in one
 * synchronous step, so a join called off after its work finished, but before its answer went
 * out, answers the refusal rather than an ok the connection no longer matches.
 */
export class LateAnswer {
  constructor(readonly settle: () => unknown) {}
}

/** The answer to send now: a {@link LateAnswer} settled, anything else as it is. */
export function settled(answer: unknown): unknown {
  return answer instanceof LateAnswer ? answer.settle() : answer;
}
