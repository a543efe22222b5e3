/**
 * Baseline for the comparison benchmarks: the least a push server can do per message. A bare `ws`
 * WebSocketServer at /ws (no Socket.IO, no per-message deflate), channel membership in a Map, and
 * per push ONE pre-built WebSocket frame written as is to every member socket: what Socket.IO's
 * engine does for a broadcast it could pre-encode (socket.io-adapter's `wsPreEncodedFrame`), here
 * without anything around it. With REDIS_URL, nodes share pushes through Redis sharded pub/sub.
 *
 *   node [--expose-gc] bench/baselines/ws.js     (env PORT, HOST, REDIS_URL)
 *
 * Client frames: {"type":"join","channel":"c"} answered {"type":"joined","channel":"c"}, and
 * {"type":"leave",...} answered {"type":"left",...}. A push arrives as
 * {"channel","event","data","id","ts"}. HTTP: GET /healthz, GET /memory, POST /api/push,
 * POST /api/push/batch. SIGUSR2 runs a full GC (with --expose-gc), SIGTERM closes and exits 0.
 */
// Explicit imports: the repository's ESLint config declares no Node globals for .js files.
import { Buffer } from 'node:buffer';
import console from 'node:console';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:http';
import process from 'node:process';
import { setTimeout } from 'node:timers';
import { Redis } from 'ioredis';
import { Sender, WebSocket, WebSocketServer } from 'ws';

const port = Number(process.env.PORT ?? 3000);
const host = process.env.HOST ?? '127.0.0.1';
const redisUrl = process.env.REDIS_URL;
const MAX_BODY_BYTES = 1024 * 1024;

const idPrefix = randomBytes(4).toString('hex');
let nextId = 0;

/** Local members of each channel. @type {Map<string, Set<WebSocket>>} */
const members = new Map();
/** Channels each socket joined, to clean up on close. @type {WeakMap<WebSocket, Set<string>>} */
const joinedBy = new WeakMap();
/** This node's SSUBSCRIBE per channel, settled once Redis confirmed it. @type {Map<string, Promise<unknown>>} */
const subscriptions = new Map();

let pub;
let sub;
if (redisUrl) {
  pub = new Redis(redisUrl);
  sub = pub.duplicate();
  await Promise.all([once(pub, 'ready'), once(sub, 'ready')]);
  sub.on('smessage', (channel, json) => deliver(channel, json));
}

/**
 * Writes one message to every local member of the channel: the frame is built once, and each
 * socket's sender writes the same buffers. `sendFrame` is what Socket.IO's websocket transport
 * calls for a pre-encoded broadcast (engine.io build/transports/websocket.js); `send` would
 * frame and copy the payload again per socket.
 * @param {string} channel
 * @param {string} json
 */
function deliver(channel, json) {
  const sockets = members.get(channel);
  if (!sockets) return;
  // `Sender` is what the CommonJS build exposes as `WebSocket.Sender`.
  const frame = Sender.frame(Buffer.from(json), {
    fin: true,
    rsv1: false,
    opcode: 1,
    mask: false,
    readOnly: false,
  });
  for (const socket of sockets) {
    if (socket.readyState !== WebSocket.OPEN) continue;
    if (socket._sender?.sendFrame) socket._sender.sendFrame(frame);
    else socket.send(json);
  }
}

/**
 * Publishes one push to each of its channels: through Redis when clustered (every node, this one
 * included, delivers what its subscription receives), else straight to the local members.
 * @param {{ channel: string | string[], event: string, data: unknown }} push
 */
async function publish(push) {
  const channels = Array.isArray(push.channel) ? push.channel : [push.channel];
  const id = `${idPrefix}-${(nextId++).toString(36)}`;
  for (const channel of channels) {
    const json = JSON.stringify({
      channel,
      event: push.event,
      data: push.data,
      id,
      ts: Date.now(),
    });
    if (pub) await pub.spublish(channel, json);
    else deliver(channel, json);
  }
  return { id, channel: channels, event: push.event, data: push.data };
}

/**
 * Adds the socket to the channel; resolves once this node receives the channel's pushes.
 * @param {WebSocket} socket
 * @param {string} channel
 */
function join(socket, channel) {
  let sockets = members.get(channel);
  if (!sockets) {
    sockets = new Set();
    members.set(channel, sockets);
    if (sub) subscriptions.set(channel, sub.ssubscribe(channel));
  }
  sockets.add(socket);
  let channels = joinedBy.get(socket);
  if (!channels) {
    channels = new Set();
    joinedBy.set(socket, channels);
  }
  channels.add(channel);
  return subscriptions.get(channel);
}

/**
 * @param {WebSocket} socket
 * @param {string} channel
 */
function leave(socket, channel) {
  joinedBy.get(socket)?.delete(channel);
  const sockets = members.get(channel);
  if (!sockets) return;
  sockets.delete(socket);
  if (sockets.size > 0) return;
  members.delete(channel);
  subscriptions.delete(channel);
  if (sub) void sub.sunsubscribe(channel);
}

const http = createServer((req, res) => {
  const answer = (status, body) => {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
    });
    res.end(text);
  };
  if (req.method === 'GET' && req.url === '/healthz') return answer(200, { ok: true });
  if (req.method === 'GET' && req.url === '/memory') return answer(200, process.memoryUsage());
  if (req.method !== 'POST' || (req.url !== '/api/push' && req.url !== '/api/push/batch'))
    return answer(404, { error: 'not found' });
  const chunks = [];
  let size = 0;
  req.on('data', (chunk) => {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) req.destroy();
    else chunks.push(chunk);
  });
  req.on('end', () => {
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      return answer(400, { error: 'invalid JSON' });
    }
    const done =
      req.url === '/api/push'
        ? publish(body)
        : Promise.all((Array.isArray(body?.pushes) ? body.pushes : []).map(publish)).then(
            (pushed) => ({
              results: pushed.map(({ id, channel, event }) => ({ id, channel, event })),
            }),
          );
    done.then(
      (result) => answer(200, result),
      (err) => answer(500, { error: String(err) }),
    );
  });
});

const wss = new WebSocketServer({ server: http, path: '/ws', perMessageDeflate: false });
wss.on('connection', (socket) => {
  socket.on('message', (raw) => {
    let frame;
    try {
      frame = JSON.parse(raw.toString());
    } catch {
      return;
    }
    const channel = frame?.channel;
    if (typeof channel !== 'string') return;
    if (frame.type === 'join')
      void Promise.resolve(join(socket, channel)).then(
        () => socket.send(JSON.stringify({ type: 'joined', channel })),
        (err) => socket.send(JSON.stringify({ type: 'error', channel, error: String(err) })),
      );
    else if (frame.type === 'leave') {
      leave(socket, channel);
      socket.send(JSON.stringify({ type: 'left', channel }));
    }
  });
  socket.on('close', () => {
    for (const channel of joinedBy.get(socket) ?? []) leave(socket, channel);
  });
});

process.on('SIGUSR2', () => globalThis.gc?.());
process.once('SIGTERM', () => {
  setTimeout(() => process.exit(0), 3000).unref();
  for (const socket of wss.clients) socket.terminate();
  wss.close();
  http.close(() => {
    pub?.disconnect();
    sub?.disconnect();
    process.exit(0);
  });
});

http.listen(port, host, () => console.log(`ws baseline on http://${host}:${port}`));
