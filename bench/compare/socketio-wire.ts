/**
 * Socket.IO v5 over Engine.IO v4, WebSocket transport only, the subscriber's side: what
 * socket.io-client does for `io(url, { auth, transports: ['websocket'] })`, `emit('join', ..., ack)`
 * and `on('msg')`, at a fraction of its cost per message. Each WebSocket frame is one Engine.IO
 * packet: a type digit, then for a message (4) a Socket.IO packet: a type digit, an optional ack
 * id, and a JSON array.
 */
import type { WebSocket } from 'ws';
import type { Wire, WireEvents, WireSession } from './wire.js';

const OPEN = 0x30; // '0'
const PING = 0x32; // '2'
const MESSAGE = 0x34; // '4'
// Socket.IO packet types, after the Engine.IO '4'.
const CONNECT = 0x30; // '0'
const EVENT = 0x32; // '2'
const ACK = 0x33; // '3'
const CONNECT_ERROR = 0x34; // '4'
const MSG_EVENT = Buffer.from('42["msg",');

/** Socket.IO on the default path. */
export const socketIoWire: Wire = {
  url: (httpUrl) => `${httpUrl.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`,
  session: (ws, token, events) => new SocketIoSession(ws, token, events),
};

class SocketIoSession implements WireSession {
  private nextAck = 0;
  /** The channel each unanswered join asked for, by ack id. */
  private readonly joins = new Map<number, string>();

  constructor(
    private readonly ws: WebSocket,
    private readonly token: string | undefined,
    private readonly events: WireEvents,
  ) {}

  // Engine.IO speaks first (its open packet).
  opened(): void {}

  frame(data: Buffer): void {
    const type = data[0];
    if (type === MESSAGE) {
      const packet = data[1];
      if (packet === EVENT) {
        if (data.compare(MSG_EVENT, 0, MSG_EVENT.length, 0, MSG_EVENT.length) === 0)
          this.events.message(data);
      } else if (packet === ACK) this.acked(data);
      else if (packet === CONNECT) this.events.ready();
      else if (packet === CONNECT_ERROR) this.events.refused(connectErrorCode(data));
    } else if (type === PING) this.ws.send('3');
    else if (type === OPEN)
      this.ws.send(this.token === undefined ? '40' : `40${JSON.stringify({ token: this.token })}`);
  }

  join(channel: string): void {
    const ackId = this.nextAck++;
    this.joins.set(ackId, channel);
    this.ws.send(`42${ackId}${JSON.stringify(['join', { channel }])}`);
  }

  /** `43<ackId>[{"ok":true,...}]`: one join answered. */
  private acked(data: Buffer): void {
    const text = data.toString('utf8');
    const open = text.indexOf('[');
    const ackId = Number(text.slice(2, open));
    const channel = this.joins.get(ackId);
    if (channel === undefined) return;
    this.joins.delete(ackId);
    const [answer] = JSON.parse(text.slice(open)) as [{ ok?: boolean; error?: string }];
    if (answer?.ok === true) this.events.joined(channel);
    else this.events.refused(`join ${answer?.error ?? 'refused'}`, channel);
  }
}

/** `44{"message":"unavailable","data":{"code":"node_full"}}`: the code, or the message. */
function connectErrorCode(data: Buffer): string {
  try {
    const error = JSON.parse(data.toString('utf8', 2)) as {
      message?: string;
      data?: { code?: string };
    };
    return error.data?.code ?? error.message ?? 'connect_error';
  } catch {
    return 'connect_error';
  }
}
