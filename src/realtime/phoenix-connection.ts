import type { Logger } from 'pino';
import { WebSocket, type RawData } from 'ws';
import type { HandshakeInfo } from '../auth/hooks.js';
import type { ChannelMessage } from '../delivery/message.js';
import type { ChannelSession, JoinAnswer } from './channel-session.js';
import { settled } from './join-deadline.js';
import {
  decodeFrame,
  encodeFrame,
  messageFrame,
  PHX,
  replyFrame,
  SOCKET_TOPIC,
  type PhoenixFrame,
  type PhoenixRef,
} from './phoenix-frames.js';
import type { ConnectionHub, HubConnection } from './connection-hub.js';
import { isPlainObject, type LeftEvent } from './schemas.js';
import type { CloseReason, SessionIdentity, SessionTransport } from './session-transport.js';
import { holdForTurn, textOf } from './ws-frames.js';

/** WebSocket close codes the server uses (RFC 6455 section 7.4.1). */
export const PHOENIX_CLOSE = {
  /**
   * A backend disconnected the user: a normal closure, which phoenix.js 1.6 and later take as
   * "do not reconnect" (its `onConnClose` reconnects on any other code).
   */
  normal: 1000,
  /** Drain: the node goes away, the client reconnects elsewhere. */
  goingAway: 1001,
  /** A binary frame: only the JSON (text) serializer is spoken. */
  unsupportedData: 1003,
  /** A frame that is not a Phoenix frame. */
  invalidFrame: 1007,
  /** The client broke the protocol's rules (no heartbeat) or its token expired. */
  policy: 1008,
} as const;

/** What a connection needs besides its WebSocket. */
export interface PhoenixConnectionOptions {
  id: string;
  handshake: HandshakeInfo;
  identity: SessionIdentity;
  hub: ConnectionHub;
  log: Logger;
  /** A client that sends no heartbeat for this long is closed. */
  heartbeatTimeoutMs: number;
  /** Called once when the connection is gone (closed by either side): counts, logs. */
  onEnd(connection: PhoenixConnection): void;
}

/**
 * One Phoenix-protocol WebSocket (pushex.js, phoenix.js): a session transport that only frames
 * and carries. Topics are channel names; `phx_join`, `phx_leave` go to the channel session (the
 * same join, leave, recovery and expiry as Socket.IO sockets); `heartbeat` on topic `phoenix` is
 * answered here. Every frame with a ref is answered; a frame that cannot be read closes the
 * connection with the reason, and nothing a client sends can throw out of here.
 */
export class PhoenixConnection implements SessionTransport, HubConnection {
  readonly id: string;
  readonly handshake: HandshakeInfo;
  identity: SessionIdentity;
  private readonly inRooms = new Set<string>();
  /** The join_ref of each topic joined (answered ok): `phx_close` frames name it. */
  private readonly joinRefs = new Map<string, PhoenixRef>();
  /** The join_ref of each topic whose join is not answered yet (a disconnect closes it too). */
  private readonly joining = new Map<string, PhoenixRef>();
  private session: ChannelSession | undefined;
  private lastHeartbeat = Date.now();
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private ended = false;

  constructor(
    private readonly ws: WebSocket,
    private readonly options: PhoenixConnectionOptions,
  ) {
    this.id = options.id;
    this.handshake = options.handshake;
    this.identity = options.identity;
  }

  /** Starts serving frames to `session`. */
  serve(session: ChannelSession): void {
    this.session = session;
    this.options.hub.register(this);
    this.ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    // ws reports protocol errors (an oversized frame, bad UTF-8) here and closes on its own.
    this.ws.on('error', (err) =>
      this.options.log.debug({ err, conn: this.id }, 'phoenix socket error'),
    );
    this.ws.on('close', (code, reason) => this.end(code, reason.toString()));
    this.armHeartbeat(this.options.heartbeatTimeoutMs);
  }

  get userId(): string | undefined {
    return this.identity.userId;
  }

  get transport(): string {
    return 'phoenix';
  }

  get encode(): (message: ChannelMessage) => Buffer {
    return messageFrame;
  }

  get closed(): boolean {
    return this.ended || this.ws.readyState !== WebSocket.OPEN;
  }

  rooms(): Iterable<string> {
    return this.inRooms;
  }

  inRoom(room: string): boolean {
    return this.inRooms.has(room);
  }

  joinRoom(room: string): void {
    // Late work of a connection that is gone must not leave it in a room.
    if (this.ended || this.inRooms.has(room)) return;
    this.inRooms.add(room);
    this.options.hub.add(room, this);
  }

  leaveRoom(room: string): void {
    if (!this.inRooms.delete(room)) return;
    this.options.hub.remove(room, this);
  }

  send(message: ChannelMessage): void {
    this.write(messageFrame(message));
  }

  /** The server took the connection out of a channel: Phoenix's `phx_close` for its join. */
  left(event: LeftEvent): void {
    const joinRef = this.joinRefs.get(event.channel) ?? null;
    this.joinRefs.delete(event.channel);
    this.write(encodeFrame(joinRef, joinRef, event.channel, PHX.close, { reason: event.reason }));
  }

  close(reason: CloseReason): void {
    if (reason !== 'disconnected') return this.closeWith(PHOENIX_CLOSE.policy, reason);
    // phoenix.js before 1.6 (the one pushex.js bundles) reconnects after every close it did not
    // ask for, whatever the code, and then rejoins every channel that is not closed. A channel
    // closed by `phx_close` is dropped and never rejoined: so every topic, joined or joining,
    // gets one first, and a reconnected pushex.js holds no channel. Newer phoenix.js does not
    // reconnect at all after a normal closure.
    for (const [topic, joinRef] of [...this.joinRefs, ...this.joining])
      this.write(encodeFrame(joinRef, joinRef, topic, PHX.close, { reason }));
    this.closeWith(PHOENIX_CLOSE.normal, reason);
  }

  /** Drain: a transport close, so that the client's own reconnect takes it to another node. */
  closeTransport(): void {
    this.closeWith(PHOENIX_CLOSE.goingAway, 'server shutting down');
  }

  /** Slow consumer or end of drain: drops the TCP connection without waiting for anything. */
  terminate(): void {
    this.ws.terminate();
    this.end(1006, 'terminated');
  }

  /** Output the socket holds and the kernel has not taken yet. */
  get unsentBytes(): number {
    return this.ws.bufferedAmount;
  }

  write(frame: Buffer | string): void {
    if (this.ended || this.ws.readyState !== WebSocket.OPEN) return;
    // Frames of one turn (a rejoin's replay and the join's reply) leave in one write.
    holdForTurn(this.ws);
    this.ws.send(frame, { binary: false });
  }

  private closeWith(code: number, reason: string): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(code, reason);
    // Out of its rooms and counts at once; the close handshake (bounded by ws) finishes alone.
    this.end(code, reason);
  }

  private end(code: number, reason: string): void {
    if (this.ended) return;
    this.ended = true;
    if (this.heartbeatTimer) clearTimeout(this.heartbeatTimer);
    this.options.hub.unregister(this, [...this.inRooms]);
    this.inRooms.clear();
    this.joinRefs.clear();
    this.joining.clear();
    this.session?.end();
    this.options.log.info({ conn: this.id, code, reason }, 'socket disconnected');
    this.options.onEnd(this);
  }

  private armHeartbeat(ms: number): void {
    this.heartbeatTimer = setTimeout(() => {
      const idle = Date.now() - this.lastHeartbeat;
      const timeout = this.options.heartbeatTimeoutMs;
      if (idle < timeout) return this.armHeartbeat(timeout - idle);
      this.options.log.info({ conn: this.id, idleMs: idle }, 'phoenix socket closed: no heartbeat');
      this.closeWith(PHOENIX_CLOSE.policy, 'heartbeat timeout');
    }, ms);
    this.heartbeatTimer.unref();
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    if (this.ended) return;
    if (isBinary)
      return this.refuseFrame(PHOENIX_CLOSE.unsupportedData, 'binary frames are not supported');
    const decoded = decodeFrame(textOf(data));
    if (!decoded.ok) return this.refuseFrame(PHOENIX_CLOSE.invalidFrame, decoded.reason);
    const frame = decoded.frame;
    if (frame.topic === SOCKET_TOPIC) {
      if (frame.event !== PHX.heartbeat) return this.reply(frame, 'error', unmatched);
      this.lastHeartbeat = Date.now();
      return this.reply(frame, 'ok', {});
    }
    switch (frame.event) {
      case PHX.join:
        return this.onJoin(frame);
      case PHX.leave:
        return this.onLeave(frame);
      default:
        // A push-only server: no other event on a channel; on a topic not joined, Phoenix's word.
        return this.reply(
          frame,
          'error',
          this.joinRefs.has(frame.topic) ? { reason: 'invalid_request' } : unmatched,
        );
    }
  }

  private onJoin(frame: PhoenixFrame): void {
    const session = this.session!;
    const payload = frame.payload ?? {};
    if (!isPlainObject(payload)) return this.reply(frame, 'error', { reason: 'invalid_request' });
    // A second join of a topic already joined: Phoenix closes the earlier join (its channel
    // object on the client), then answers the new one. The connection stays in the channel.
    const earlier = this.joinRefs.get(frame.topic);
    if (earlier !== undefined && earlier !== frame.joinRef) {
      this.joinRefs.delete(frame.topic);
      this.write(encodeFrame(earlier, earlier, frame.topic, PHX.close, {}));
    }
    const request: Record<string, unknown> = { channel: frame.topic };
    if (payload.since !== undefined) request.since = payload.since;
    if (payload.params !== undefined) request.params = payload.params;
    this.joining.set(frame.topic, frame.joinRef);
    session.join(request).then(
      (answer) => {
        if (this.joining.get(frame.topic) === frame.joinRef) this.joining.delete(frame.topic);
        // Settled and sent in one step: nothing can change the answer in between.
        const final = settled(answer) as JoinAnswer;
        if (this.closed) return;
        if (!final.ok) {
          this.reply(frame, 'error', { reason: final.error });
          // An error reply alone makes phoenix.js rejoin after its backoff; a backend's
          // unsubscribe must end the channel, as `left` does for a joined one.
          if (final.error === 'unsubscribed')
            this.write(
              encodeFrame(frame.joinRef, frame.joinRef, frame.topic, PHX.close, {
                reason: final.error,
              }),
            );
          return;
        }
        this.joinRefs.set(frame.topic, frame.joinRef);
        const response: Record<string, unknown> = { ...final };
        delete response.ok;
        this.reply(frame, 'ok', response);
      },
      (err: unknown) => {
        if (this.joining.get(frame.topic) === frame.joinRef) this.joining.delete(frame.topic);
        this.options.log.warn({ err, conn: this.id, event: frame.event }, 'socket event failed');
        this.reply(frame, 'error', { reason: 'invalid_request' });
      },
    );
  }

  private onLeave(frame: PhoenixFrame): void {
    const answer = this.session!.leave({ channel: frame.topic });
    if (!answer.ok) return this.reply(frame, 'error', { reason: answer.error });
    // Left (or never in it): a join of the topic that is still pending answers invalid_request.
    this.joinRefs.delete(frame.topic);
    this.joining.delete(frame.topic);
    this.reply(frame, 'ok', {});
  }

  private reply(frame: PhoenixFrame, status: 'ok' | 'error', response: Record<string, unknown>) {
    this.write(replyFrame(frame, status, response));
  }

  private refuseFrame(code: number, reason: string): void {
    this.options.log.debug({ conn: this.id, reason }, 'phoenix frame refused');
    this.closeWith(code, reason);
  }
}

const unmatched = { reason: 'unmatched topic' };
