import { SignJWT } from 'jose';
import { pino, type Logger } from 'pino';
import { io as connectSocket, type Socket } from 'socket.io-client';
import { createPushServer, type PushServer } from '../../src/server.js';
import type { ConfigInput } from '../../src/config/schema.js';
import type { Hooks } from '../../src/auth/hooks.js';
import type { ChannelMessage } from '../../src/delivery/message.js';

/** The API key and JWT secret every test node uses unless told otherwise. */
export const API_KEY = 'test-api-key-0123456789abcdef';
export const JWT_SECRET = 'test-jwt-secret-0123456789abcdef-0123456789';

/** A started in-process node with its URL. */
export interface TestNode {
  server: PushServer;
  url: string;
  port: number;
  stop(): Promise<void>;
}

/**
 * Starts one real node (own HTTP server, own Redis connections) on a free loopback port; it logs
 * nothing unless given a `logger`.
 */
export async function startNode(
  config: ConfigInput = {},
  hooks?: Hooks,
  options: { logger?: Logger } = {},
): Promise<TestNode> {
  const server = createPushServer(
    {
      env: 'test',
      host: '127.0.0.1',
      port: 0,
      apiKeys: [{ key: API_KEY, id: 'test' }],
      jwt: { secret: JWT_SECRET },
      logLevel: 'silent',
      ...config,
    },
    { logger: options.logger ?? pino({ level: 'silent' }), ...(hooks ? { hooks } : {}) },
  );
  const { port } = await server.start();
  const url = `http://127.0.0.1:${port}`;
  return { server, url, port, stop: async () => void (await server.stop()) };
}

/** Starts `nodes` real nodes sharing one Redis. */
export async function startCluster(options: {
  nodes: number;
  redisUrl: string;
  config?: ConfigInput;
}): Promise<TestNode[] & AsyncDisposable> {
  const nodes: TestNode[] = [];
  for (let i = 0; i < options.nodes; i++)
    nodes.push(await startNode({ redisUrl: options.redisUrl, ...options.config }));
  return Object.assign(nodes, {
    [Symbol.asyncDispose]: async () => {
      await Promise.allSettled(nodes.map((n) => n.stop()));
    },
  });
}

/**
 * Mints a socket token signed with the test secret. `sub` defaults to 'u' when `claims` has no
 * `sub` key at all; pass `sub: undefined` for a token without one. `exp: null` mints one without
 * `exp`.
 */
export async function token(
  claims: { sub?: string | undefined; channels?: string[]; [k: string]: unknown } = {},
  options: {
    secret?: string;
    alg?: string;
    exp?: number | string | null;
    nbf?: number | string;
  } = {},
): Promise<string> {
  const sub = 'sub' in claims ? claims.sub : 'u';
  const jwt = new SignJWT({ ...claims })
    .setProtectedHeader({ alg: options.alg ?? 'HS256' })
    .setIssuedAt();
  if (typeof sub === 'string') jwt.setSubject(sub);
  if (options.exp !== null) jwt.setExpirationTime(options.exp ?? '1h');
  if (options.nbf !== undefined) jwt.setNotBefore(options.nbf);
  return jwt.sign(new TextEncoder().encode(options.secret ?? JWT_SECRET));
}

/** A connected socket.io-client that records every `msg`. */
export interface TestClient {
  socket: Socket;
  messages: ChannelMessage[];
  join(channel: string, extra?: Record<string, unknown>): Promise<Record<string, unknown>>;
  emit(event: string, payload?: unknown): Promise<Record<string, unknown>>;
  /** Resolves once `count` messages (in total) have arrived. */
  waitFor(count: number, timeoutMs?: number): Promise<ChannelMessage[]>;
  close(): void;
}

/** The connect_error of a refused client: `message`, `data: { code, retryAfterMs? }`. */
export type ConnectRefusal = Error & { data?: { code?: unknown; retryAfterMs?: unknown } };

/** Connects; resolves with the client, or with the refusal (never rejects). */
export function connectOrRefusal(
  url: string,
  auth: { token?: string } | Record<string, unknown>,
  options: { transports?: string[]; path?: string } = {},
): Promise<TestClient | ConnectRefusal> {
  return connectClient(url, auth, options).catch((err: unknown) => err as ConnectRefusal);
}

/** A socket of user `sub` with a token for no channel: the client, or the refusal. */
export async function connectAs(
  node: Pick<TestNode, 'url'>,
  sub: string,
  auth: Record<string, unknown> = {},
): Promise<TestClient | ConnectRefusal> {
  return connectOrRefusal(node.url, { token: await token({ sub, channels: [] }), ...auth });
}

/** Connects a real socket.io-client; rejects with the connect_error if refused. */
export async function connectClient(
  url: string,
  auth: { token?: string } | Record<string, unknown>,
  options: { transports?: string[]; path?: string } = {},
): Promise<TestClient> {
  const socket = connectSocket(url, {
    auth,
    transports: options.transports ?? ['websocket'],
    reconnection: false,
    forceNew: true,
    ...(options.path ? { path: options.path } : {}),
  });
  const messages: ChannelMessage[] = [];
  const waiters: Array<() => void> = [];
  socket.on('msg', (m: ChannelMessage) => {
    messages.push(m);
    for (const w of waiters.splice(0)) w();
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', (err) => {
      socket.close();
      reject(err);
    });
  });
  const emit = (event: string, payload?: unknown): Promise<Record<string, unknown>> =>
    socket.timeout(5000).emitWithAck(event, payload) as Promise<Record<string, unknown>>;
  return {
    socket,
    messages,
    emit,
    join: (channel, extra = {}) => emit('join', { channel, ...extra }),
    waitFor(count, timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`expected ${count} messages, got ${messages.length}`)),
          timeoutMs,
        );
        const check = (): void => {
          if (messages.length >= count) {
            clearTimeout(timer);
            resolve(messages);
          } else waiters.push(check);
        };
        check();
      });
    },
    close: () => void socket.close(),
  };
}

/** POSTs JSON to the push API with the test key (or the given headers). */
export async function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return {
    status: res.status,
    body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
    headers: res.headers,
  };
}

/** The sockets a node holds (every transport), as its own entry of `GET /api/stats` says. */
export async function socketsOf(node: Pick<TestNode, 'url'>): Promise<number> {
  const res = await fetch(`${node.url}/api/stats`, {
    headers: { authorization: `Bearer ${API_KEY}` },
  });
  if (res.status !== 200) throw new Error(`GET /api/stats answered ${res.status}`);
  const stats = (await res.json()) as { nodes: Array<{ sockets: number }> };
  return stats.nodes[0]!.sockets;
}
