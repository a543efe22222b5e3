import type { ChannelSession } from './channel-session.js';
import { settled } from './join-deadline.js';

/** A Socket.IO acknowledgement: the answer goes back to the client's callback. */
export type Ack = (answer: unknown) => void;

const INVALID = { ok: false, error: 'invalid_request' } as const;

/**
 * Runs a client event (`join`, `leave`, `refresh`) on its session and hands the answer to `ack`,
 * whatever happens: a handler that throws answers `invalid_request` (and `failed` is told), and so
 * does any other event that asks for an answer: a client must never wait for ever. The same for
 * every Socket.IO connection, engine.io's or a plain WebSocket's.
 */
export function answerEvent(
  session: ChannelSession,
  event: string,
  payload: unknown,
  ack: Ack | undefined,
  failed: (err: unknown) => void,
): void {
  const handler = HANDLERS.get(event);
  if (handler === undefined) return void ack?.(INVALID);
  Promise.resolve()
    .then(() => handler(session, payload))
    .then(
      // Settled and sent in one step: nothing can change the answer in between.
      (result) => ack?.(settled(result)),
      (err: unknown) => {
        failed(err);
        ack?.(INVALID);
      },
    );
}

type EventHandler = (session: ChannelSession, payload: unknown) => unknown;

/** The session's handler of each client event. */
const HANDLERS = new Map<string, EventHandler>([
  ['join', (session, payload) => session.join(payload)],
  ['leave', (session, payload) => session.leave(payload)],
  ['refresh', (session, payload) => session.refresh(payload)],
]);
