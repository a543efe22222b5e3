import { createRequire } from 'node:module';
import WebSocket from 'ws';
import { until } from './assertions.js';
import type { TestNode } from './nodes.js';
import { refusedUpgrade } from './upgrades.js';

// The real pushex.js (PushEx's npm client). Its bundled phoenix.js takes `WebSocket` from `window`
// when it loads, and registers a `beforeunload` listener on it: give it ws's WebSocket.
interface JoinPush {
  receive(status: string, fn: (response: any) => void): JoinPush;
}
interface PushexSubscription {
  bind(event: string, fn: (data: unknown, event: string) => void): () => void;
  /** phoenix.js' Channel: `state` is `joined`, `joining`, `errored`, `leaving` or `closed`. */
  channel: { joinPush: JoinPush; state: string } | null;
}
export interface PushexClient {
  connect(): Promise<unknown>;
  disconnect(): Promise<void>;
  subscribe(channel: string): PushexSubscription;
  unsubscribe(channel: string): Promise<void>;
  getExistingSubscription(channel: string): PushexSubscription | undefined;
  getSocket(): {
    heartbeatIntervalMs: number;
    isConnected(): boolean;
    onClose(fn: (event: { code: number; reason: string }) => void): void;
  };
}
type PushexClass = new (
  url: string,
  options: {
    getParams?: () => Promise<Record<string, unknown>>;
    onConnect?: () => void;
    onConnectionError?: () => void;
    socketReconnectAlgorithm?: (tries: number) => number;
  },
) => PushexClient;
const globals = globalThis as { window?: unknown };
globals.window = { WebSocket, addEventListener: () => {} };
const { Pushex } = createRequire(import.meta.url)('pushex') as { Pushex: PushexClass };
delete globals.window;

/** The WebSocket URL of a node's Phoenix endpoint path (pushex.js appends `/websocket`). */
export const wsUrl = (node: Pick<TestNode, 'url'>, path = '/push_socket'): string =>
  `${node.url.replace(/^http/, 'ws')}${path}`;

/** A pushex.js client, connected; every `(data, event)` its subscriptions deliver is recorded. */
export interface PushexUnderTest {
  client: PushexClient;
  received: Array<{ channel: string; data: unknown; event: string }>;
  /** How many times the socket opened (1 once connected; more after reconnects). */
  readonly opens: number;
  /** Subscribes and resolves with the join's reply (`{ status, response }`). */
  subscribe(channel: string): Promise<{ status: string; response: any }>;
  close(): Promise<void>;
}

/** Connects a real pushex.js client to the node's Phoenix endpoint. */
export async function pushex(
  node: Pick<TestNode, 'url'>,
  params: Record<string, unknown>,
  options: { heartbeatMs?: number; path?: string; reconnectMs?: number } = {},
): Promise<PushexUnderTest> {
  let opened!: () => void;
  let opens = 0;
  const open = new Promise<void>((r) => (opened = r));
  const client = new Pushex(wsUrl(node, options.path), {
    getParams: () => Promise.resolve(params),
    onConnect: () => {
      opens += 1;
      opened();
    },
    socketReconnectAlgorithm: () => options.reconnectMs ?? 60_000,
  });
  if (options.heartbeatMs) client.getSocket().heartbeatIntervalMs = options.heartbeatMs;
  await client.connect();
  await open;
  const received: PushexUnderTest['received'] = [];
  return {
    client,
    received,
    get opens() {
      return opens;
    },
    subscribe: (channel) =>
      new Promise((resolve) => {
        const sub = client.subscribe(channel);
        sub.bind('*', (data, event) => received.push({ channel, data, event }));
        sub
          .channel!.joinPush.receive('ok', (response) => resolve({ status: 'ok', response }))
          .receive('error', (response) => resolve({ status: 'error', response }))
          .receive('timeout', () => resolve({ status: 'timeout', response: {} }));
      }),
    close: () => client.disconnect(),
  };
}

/** A bare Phoenix-protocol client: every frame it gets, and how its connection ended. */
export interface RawPhoenix {
  ws: WebSocket;
  frames: unknown[][];
  send(frame: unknown): void;
  /** The first frame (from now on or already received) that `match` accepts. */
  next(match: (frame: unknown[]) => boolean, timeoutMs?: number): Promise<unknown[]>;
  /** The reply to the frame sent with `ref`. */
  reply(ref: string, timeoutMs?: number): Promise<{ status: string; response: any }>;
  closed: Promise<{ code: number; reason: string }>;
}

/** Opens a bare Phoenix-protocol WebSocket. */
export function rawConnect(url: string): Promise<RawPhoenix> {
  const ws = new WebSocket(url);
  const frames: unknown[][] = [];
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  ws.on('message', (data) => frames.push(JSON.parse((data as Buffer).toString()) as unknown[]));
  const raw: RawPhoenix = {
    ws,
    frames,
    closed,
    send: (frame) => ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame)),
    next: async (match, timeoutMs = 5000) => {
      const found = await until(() => frames.find(match), timeoutMs, 'a Phoenix frame');
      return found;
    },
    reply: async (ref, timeoutMs) =>
      (await raw.next((f) => f[1] === ref && f[3] === 'phx_reply', timeoutMs))[4] as {
        status: string;
        response: any;
      },
  };
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(raw));
    ws.once('error', reject);
  });
}

/** Opens a Phoenix upgrade that the server must refuse: its HTTP status and JSON body. */
export async function refusal(url: string): Promise<{ status: number; body: any }> {
  const { status, text } = await refusedUpgrade(url);
  return { status, body: text ? JSON.parse(text) : undefined };
}
