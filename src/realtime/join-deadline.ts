/** What a step run against a join's deadline ({@link Within}) gave: its value, or undefined. */
export type InTime<T> = { value: T } | undefined;

/** Runs a Redis-dependent step of a join, bounded by the join's deadline. */
export type Within = <T>(step: () => Promise<T>) => Promise<InTime<T>>;

/**
 * One deadline, `ms` from now, for every Redis-dependent step of a join: a step gives its value,
 * or undefined when it failed or the deadline came first (Redis down, paused, or slow); a step
 * not started by then is never started. Nothing waits for a step that came too late: its result
 * is dropped, so the join goes on (and answers) at once, and no late work follows its answer.
 */
export function deadline(
  ms: number,
  /** Told of every step that failed or came too late (a swallowed failure leaves a trace). */
  missed: (why: 'failed' | 'late', err?: unknown) => void = () => {},
): Within {
  const end = Date.now() + ms;
  return <T>(step: () => Promise<T>): Promise<InTime<T>> => {
    const left = end - Date.now();
    if (left <= 0) {
      missed('late');
      return Promise.resolve(undefined);
    }
    return new Promise<InTime<T>>((resolve) => {
      const timer = setTimeout(() => {
        missed('late');
        resolve(undefined);
      }, left);
      const done = (result: InTime<T>): void => {
        clearTimeout(timer);
        resolve(result);
      };
      let running: Promise<T>;
      try {
        running = step();
      } catch (err) {
        missed('failed', err);
        return done(undefined);
      }
      running.then(
        (value) => done({ value }),
        (err: unknown) => {
          missed('failed', err);
          done(undefined);
        },
      );
    });
  };
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
