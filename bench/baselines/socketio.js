/**
 * Baseline for the comparison benchmarks: the push server a team writes by hand in an afternoon
 * with Express and Socket.IO. No auth, no history, no metrics, no limits, Socket.IO's defaults.
 * With REDIS_URL, nodes share pushes through @socket.io/redis-adapter in sharded mode.
 *
 *   node [--expose-gc] bench/baselines/socketio.js     (env PORT, HOST, REDIS_URL)
 *
 * GET /healthz, GET /memory, POST /api/push, POST /api/push/batch; socket events `join` and
 * `leave` with an acknowledgement; pushes arrive as `msg` events. SIGUSR2 runs a full GC (with
 * --expose-gc), SIGTERM closes and exits 0.
 */
// Explicit imports: the repository's ESLint config declares no Node globals for .js files.
import console from 'node:console';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:http';
import process from 'node:process';
import { setTimeout } from 'node:timers';
import { createShardedAdapter } from '@socket.io/redis-adapter';
import express from 'express';
import { Redis } from 'ioredis';
import { Server } from 'socket.io';

const port = Number(process.env.PORT ?? 3000);
const host = process.env.HOST ?? '127.0.0.1';
const redisUrl = process.env.REDIS_URL;

// Unique across nodes: a random prefix per process, then a counter.
const idPrefix = randomBytes(4).toString('hex');
let nextId = 0;

const app = express();
app.use(express.json({ limit: '1mb' }));
const http = createServer(app);
const io = new Server(http, { cors: { origin: '*' } });

/** @type {Redis[]} */
const redisClients = [];
if (redisUrl) {
  const pub = new Redis(redisUrl);
  const sub = pub.duplicate();
  redisClients.push(pub, sub);
  // A join before the subscriber is ready would send SSUBSCRIBE too early (see DESIGN.md).
  await Promise.all([once(pub, 'ready'), once(sub, 'ready')]);
  io.adapter(createShardedAdapter(pub, sub));
}

io.on('connection', (socket) => {
  socket.on('join', (payload, ack) => {
    const channel = payload?.channel;
    void socket.join(channel);
    if (typeof ack === 'function') ack({ ok: true, channel });
  });
  socket.on('leave', (payload, ack) => {
    const channel = payload?.channel;
    void socket.leave(channel);
    if (typeof ack === 'function') ack({ ok: true, channel });
  });
});

/**
 * Emits one push to each of its channels; answers what the push API answers.
 * @param {{ channel: string | string[], event: string, data: unknown }} push
 */
function publish(push) {
  const channels = Array.isArray(push.channel) ? push.channel : [push.channel];
  const id = `${idPrefix}-${(nextId++).toString(36)}`;
  for (const channel of channels)
    io.to(channel).emit('msg', { channel, event: push.event, data: push.data, id, ts: Date.now() });
  return { id, channel: channels, event: push.event, data: push.data };
}

app.get('/healthz', (_req, res) => {
  res.send('ok');
});
app.get('/memory', (_req, res) => {
  res.json(process.memoryUsage());
});
app.post('/api/push', (req, res) => {
  res.json(publish(req.body));
});
app.post('/api/push/batch', (req, res) => {
  const pushes = Array.isArray(req.body?.pushes) ? req.body.pushes : [];
  res.json({
    results: pushes.map((push) => {
      const { id, channel, event } = publish(push);
      return { id, channel, event };
    }),
  });
});

process.on('SIGUSR2', () => globalThis.gc?.());
process.once('SIGTERM', () => {
  // Sockets closed, then Redis; exit regardless after a moment so a stuck client cannot hold us.
  setTimeout(() => process.exit(0), 3000).unref();
  io.close(() => {
    for (const client of redisClients) client.disconnect();
    process.exit(0);
  });
});

http.listen(port, host, () => console.log(`socketio baseline on http://${host}:${port}`));
