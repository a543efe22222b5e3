import type { ChannelMessage } from '../delivery/message.js';

/**
 * The Phoenix socket protocol's JSON serializer, `vsn=2.0.0` (what phoenix.js and pushex.js
 * speak): every frame is a text frame holding `[join_ref, ref, topic, event, payload]`.
 */

/** A join or message reference: phoenix.js sends strings; null where there is none. */
export type PhoenixRef = string | number | null;

/** One frame from the client. */
export interface PhoenixFrame {
  joinRef: PhoenixRef;
  ref: PhoenixRef;
  topic: string;
  event: string;
  payload: unknown;
}

/** A frame read, or why it cannot be (the connection is closed with that reason). */
export type DecodedFrame = { ok: true; frame: PhoenixFrame } | { ok: false; reason: string };

/** The topic of the socket itself (heartbeats), never a channel. */
export const SOCKET_TOPIC = 'phoenix';

/** Events of the protocol (Phoenix.Socket / Phoenix.Channel). */
export const PHX = {
  join: 'phx_join',
  leave: 'phx_leave',
  reply: 'phx_reply',
  close: 'phx_close',
  heartbeat: 'heartbeat',
  message: 'msg',
} as const;

// Refs are short counters in every client; anything longer is not a ref.
const MAX_REF_CHARS = 100;
const MAX_NAME_CHARS = 300;

/** Reads one text frame; never throws. */
export function decodeFrame(text: string): DecodedFrame {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'invalid frame: not JSON' };
  }
  if (!Array.isArray(value) || value.length !== 5)
    return { ok: false, reason: 'invalid frame: expected [join_ref, ref, topic, event, payload]' };
  const [joinRef, ref, topic, event, payload] = value as unknown[];
  if (!isRef(joinRef) || !isRef(ref))
    return { ok: false, reason: 'invalid frame: join_ref and ref are strings or null' };
  if (typeof topic !== 'string' || typeof event !== 'string')
    return { ok: false, reason: 'invalid frame: topic and event are strings' };
  if (topic.length > MAX_NAME_CHARS || event.length > MAX_NAME_CHARS)
    return { ok: false, reason: 'invalid frame: topic or event too long' };
  return { ok: true, frame: { joinRef, ref, topic, event, payload } };
}

/** A frame to the client. */
export function encodeFrame(
  joinRef: PhoenixRef,
  ref: PhoenixRef,
  topic: string,
  event: string,
  payload: unknown,
): string {
  return JSON.stringify([joinRef, ref, topic, event, payload]);
}

/** The answer to `frame`: `phx_reply` `{ status, response }` with the frame's refs and topic. */
export function replyFrame(
  frame: PhoenixFrame,
  status: 'ok' | 'error',
  response: Record<string, unknown>,
): string {
  return encodeFrame(frame.joinRef, frame.ref, frame.topic, PHX.reply, { status, response });
}

/**
 * A channel message as Phoenix subscribers receive it: `[null, null, topic, "msg", { event, data,
 * id, ts, offset? }]` (pushex.js reads `event` and `data`). Built once per message and per node,
 * as bytes, so every subscriber is handed the same buffer and nothing is encoded per socket.
 */
export function messageFrame(message: ChannelMessage): Buffer {
  const payload: Record<string, unknown> = {
    event: message.event,
    data: message.data,
    id: message.id,
    ts: message.ts,
  };
  if (message.offset !== undefined) payload.offset = message.offset;
  return Buffer.from(encodeFrame(null, null, message.channel, PHX.message, payload));
}

function isRef(value: unknown): value is PhoenixRef {
  if (value === null) return true;
  if (typeof value === 'string') return value.length <= MAX_REF_CHARS;
  return typeof value === 'number' && Number.isFinite(value);
}
