/**
 * The ws baseline's protocol (bench/baselines/ws.js), the subscriber's side: JSON text frames,
 * `{"type":"join","channel"}` answered `{"type":"joined","channel"}`; every frame that is not an
 * answer is a pushed message.
 */
import type { WebSocket } from 'ws';
import type { Wire, WireEvents, WireSession } from './wire.js';

const ANSWER = Buffer.from('{"type":');

/** The baseline's endpoint at /ws. */
export const jsonWire: Wire = {
  url: (httpUrl) => `${httpUrl.replace(/^http/, 'ws')}/ws`,
  session: (ws, _token, events) => new JsonSession(ws, events),
};

class JsonSession implements WireSession {
  constructor(
    private readonly ws: WebSocket,
    private readonly events: WireEvents,
  ) {}

  // No handshake beyond the WebSocket's own.
  opened(): void {
    this.events.ready();
  }

  frame(data: Buffer): void {
    if (data.compare(ANSWER, 0, ANSWER.length, 0, ANSWER.length) !== 0)
      return this.events.message(data);
    const answer = JSON.parse(data.toString('utf8')) as {
      type: string;
      channel: string;
      error?: string;
    };
    if (answer.type === 'joined') this.events.joined(answer.channel);
    else if (answer.type === 'error')
      this.events.refused(`join ${answer.error ?? 'refused'}`, answer.channel);
  }

  join(channel: string): void {
    this.ws.send(JSON.stringify({ type: 'join', channel }));
  }
}
