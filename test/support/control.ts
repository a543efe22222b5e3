import type { Socket } from 'socket.io-client';
import { API_KEY, type TestNode } from './nodes.js';

/** An answer of the HTTP API: status, JSON body and headers. */
export interface ApiAnswer {
  status: number;
  body: Record<string, any>;
  headers: Headers;
}

/** `POST /api/users/:userId/disconnect` (the control API) with the given key. */
export function disconnectUser(
  node: Pick<TestNode, 'url'>,
  userId: string,
  key = API_KEY,
): Promise<ApiAnswer> {
  return post(node, `/api/users/${encodeURIComponent(userId)}/disconnect`, undefined, key);
}

/** `POST /api/channels/:channel/unsubscribe` `{ userId }` with the given key. */
export function unsubscribeUser(
  node: Pick<TestNode, 'url'>,
  channel: string,
  userId: unknown,
  key = API_KEY,
): Promise<ApiAnswer> {
  return post(
    node,
    `/api/channels/${encodeURIComponent(channel)}/unsubscribe`,
    JSON.stringify({ userId }),
    key,
  );
}

/** A POST with a raw body (undefined: none), the key (null: none) and more headers. */
export async function post(
  node: Pick<TestNode, 'url'>,
  path: string,
  body: string | undefined,
  key: string | null = API_KEY,
  headers: Record<string, string> = {},
): Promise<ApiAnswer> {
  const res = await fetch(`${node.url}${path}`, {
    method: 'POST',
    headers: {
      ...(key === null ? {} : { authorization: `Bearer ${key}` }),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...headers,
    },
    ...(body === undefined ? {} : { body }),
  });
  const text = await res.text();
  return {
    status: res.status,
    body: text ? (JSON.parse(text) as Record<string, any>) : {},
    headers: res.headers,
  };
}

/** What the server told one Socket.IO socket about its end: `error` events, `left` events, why. */
export interface SocketEnd {
  errors: unknown[];
  lefts: unknown[];
  /** The `disconnect` reason, once disconnected. */
  reason: string | undefined;
}

/** Records a socket's `error` and `left` events and its disconnect reason from now on. */
export function watchEnd(socket: Socket): SocketEnd {
  const end: SocketEnd = { errors: [], lefts: [], reason: undefined };
  socket.on('error', (info: unknown) => end.errors.push(info));
  socket.on('left', (info: unknown) => end.lefts.push(info));
  socket.on('disconnect', (reason) => (end.reason = reason));
  return end;
}
