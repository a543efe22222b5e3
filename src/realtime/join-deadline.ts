/** What a step run against a join's deadline ({@link Within}) gave: its value, or undefined. */
export type InTime<T> = { value: T } | undefined;

/** Runs a Redis-dependent step of a join, bounded by the join's deadline. */
export type Within = <T>(step: () => Promise<T>) => Promise<InTime<T>>;

/**
 * How late a deadline's timer may fire before the lateness is taken for this node's own stall.
 * A timer fires only once the event loop is free, and in each turn of the loop Node runs the
 * timers before it reads the sockets: a reply that came in during a stall is still unread when
 * a deadline that fell inside the stall fires.
 */
const STALL_MS = 20;
/** The furthest a join's deadline moves for the node's own stalls: this many times its length. */
const STALL_STRETCH = 4;

/**
 * One deadline, `ms` from now, for every Redis-dependent step of a join: a step gives its value,
 * or undefined when it failed or the deadline came first (Redis down, paused, or slow); a step
 * not started by then is never started. Nothing waits for a step that came too late: its result
 * is dropped, so the join goes on (and answers) at once, and no late work follows its answer.
 *
 * A stall of the node itself (its timer fired late: a storm of reconnects, a long task) says
 * nothing about Redis: the deadline starts again once it is over (never past
 * {@link STALL_STRETCH} times `ms` from the start), and a reply already waiting is read before a
 * step is given up. Without this, a recovering join on a busy node could answer
 * `recovered: false` although history held every message it missed.
 */
export function deadline(
  ms: number,
  /** Told of every step that failed or came too late (a swallowed failure leaves a trace). */
  missed: (why: 'failed' | 'late', err?: unknown) => void = () => {},
): Within {
  const started = Date.now();
  let end = started + ms;
  const latest = started + ms * STALL_STRETCH;
  return <T>(step: () => Promise<T>): Promise<InTime<T>> => {
    const left = end - Date.now();
    if (left <= 0) {
      missed('late');
      return Promise.resolve(undefined);
    }
    return new Promise<InTime<T>>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const arm = (delay: number): void => {
        const due = Date.now() + delay;
        timer = setTimeout(() => {
          const late = Date.now() - due;
          if (late > STALL_MS && end < latest) {
            // How long the stall was before the timer was due is unknown: the join's time
            // starts again from here (the reads of this turn, a reply waiting among them, come
            // before the timer armed again can fire).
            end = Math.min(Date.now() + ms, latest);
            return arm(Math.max(1, end - Date.now()));
          }
          missed('late');
          resolve(undefined);
        }, delay);
      };
      arm(left);
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
