import type { IncomingMessage } from 'node:http';
import { createServer, connect, type Server, type Socket } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLOSED,
  handshakeAnswer,
  WireSocket,
  wireSocketDefaults,
  type HandshakeRefusal,
} from '../../src/realtime/wire-socket.js';
import { until } from '../support/assertions.js';

/**
 * pushcast's own server-side WebSocket (src/realtime/wire-socket.ts) on real TCP sockets, driven
 * by a client that writes frames by hand: what RFC 6455 asks of a server reading a client, and the
 * close codes `ws` answers with for the same faults (1002 protocol, 1007 bad UTF-8, 1009 size).
 */

const MAX = 1000;

interface Pair {
  client: Socket;
  wire: WireSocket;
  messages: Array<{ text: string; binary: boolean }>;
  /** Everything the server wrote, as frames once complete. */
  frames(): Array<{ opcode: number; payload: Buffer }>;
  closedWith: Promise<number>;
  clientEnded: Promise<void>;
}

let server: Server;
let waiting: ((socket: Socket) => void) | undefined;
beforeAll(async () => {
  server = createServer((socket) => waiting?.(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
});
const opened: Socket[] = [];
afterAll(async () => {
  for (const socket of opened) socket.destroy();
  await new Promise((resolve) => server.close(resolve));
});

async function pair(maxPayload = MAX): Promise<Pair> {
  const accepted = new Promise<Socket>((resolve) => (waiting = resolve));
  const port = (server.address() as { port: number }).port;
  // Half-open allowed: the client ends its side only when a case says so.
  const client = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  client.on('error', () => {});
  const socket = await accepted;
  opened.push(client, socket);
  const messages: Pair['messages'] = [];
  let closed!: (code: number) => void;
  const closedWith = new Promise<number>((resolve) => (closed = resolve));
  const wire = new WireSocket(
    socket,
    {
      onMessage: (data, binary) =>
        messages.push({ text: binary ? data.toString('hex') : data.toString('utf8'), binary }),
      onClose: (code) => closed(code),
    },
    maxPayload,
  );
  let received = Buffer.alloc(0);
  client.on('data', (chunk: Buffer) => (received = Buffer.concat([received, chunk])));
  const clientEnded = new Promise<void>((resolve) => client.once('end', () => resolve()));
  return { client, wire, messages, frames: () => serverFrames(received), closedWith, clientEnded };
}

/**
 * The client stops reading and the server writes until more than 1 MiB of it is unread (more
 * than the kernel holds); the bytes left unsent.
 */
async function fillUnread(p: Pair): Promise<number> {
  p.client.pause();
  const chunk = 'x'.repeat(256 * 1024);
  for (let i = 0; i < 256 && p.wire.bufferedAmount <= 1 << 20; i++) {
    p.wire.send(chunk);
    await new Promise((r) => setImmediate(r));
  }
  expect(p.wire.bufferedAmount).toBeGreaterThan(1 << 20);
  return p.wire.bufferedAmount;
}

/** A client frame: masked unless told otherwise. */
function frame(
  opcode: number,
  payload: Buffer | string,
  options: { fin?: boolean; mask?: boolean; rsv?: number; length?: number } = {},
): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const { fin = true, mask = true, rsv = 0 } = options;
  const length = options.length ?? data.length;
  const head =
    length < 126
      ? Buffer.from([0, length])
      : length < 65_536
        ? Buffer.from([0, 126, length >> 8, length & 0xff])
        : Buffer.concat([Buffer.from([0, 127, 0, 0, 0, 0]), uint32(length)]);
  head[0] = (fin ? 0x80 : 0) | (rsv << 4) | opcode;
  if (!mask) return Buffer.concat([head, data]);
  head[1]! |= 0x80;
  const key = Buffer.from([0x12, 0x34, 0x56, 0x78]);
  const masked = Buffer.from(data.map((b, i) => b ^ key[i % 4]!));
  return Buffer.concat([head, key, masked]);
}

function uint32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n, 0);
  return b;
}

function closePayload(code: number, reason = ''): Buffer {
  return Buffer.concat([Buffer.from([code >> 8, code & 0xff]), Buffer.from(reason)]);
}

/** The server's (unmasked) frames in `bytes`. */
function serverFrames(bytes: Buffer): Array<{ opcode: number; payload: Buffer }> {
  const out: Array<{ opcode: number; payload: Buffer }> = [];
  let at = 0;
  while (bytes.length - at >= 2) {
    let length = bytes[at + 1]! & 0x7f;
    let head = 2;
    if (length === 126) {
      length = bytes.readUInt16BE(at + 2);
      head = 4;
    } else if (length === 127) {
      length = bytes.readUInt32BE(at + 6);
      head = 10;
    }
    if (bytes.length < at + head + length) break;
    out.push({ opcode: bytes[at]! & 0x0f, payload: bytes.subarray(at + head, at + head + length) });
    at += head + length;
  }
  return out;
}

/** The close code of the server's close frame, once it has sent one. */
async function serverCloseCode(p: Pair): Promise<number | undefined> {
  const close = await until(() => p.frames().find((f) => f.opcode === 8), 5000, 'a close frame');
  return close.payload.length >= 2 ? close.payload.readUInt16BE(0) : undefined;
}

describe('WireSocket: reading a client', () => {
  it('reads text and binary messages, fragments joined, a ping between them answered', async () => {
    const p = await pair();
    p.client.write(frame(1, 'hello'));
    p.client.write(frame(2, Buffer.from([1, 2, 3])));
    p.client.write(frame(1, 'frag', { fin: false }));
    p.client.write(frame(9, 'are you there'));
    p.client.write(frame(0, 'men', { fin: false }));
    p.client.write(frame(0, 'ted ✓'));
    p.client.write(frame(10, 'unsolicited pong'));
    await until(() => p.messages.length === 3 || undefined, 5000, 'three messages');
    expect(p.messages).toEqual([
      { text: 'hello', binary: false },
      { text: '010203', binary: true },
      { text: 'fragmented ✓', binary: false },
    ]);
    const pong = await until(() => p.frames().find((f) => f.opcode === 10), 5000, 'the pong');
    expect(pong.payload.toString()).toBe('are you there');
    p.client.destroy();
    expect(await p.closedWith).toBe(1006);
  });

  it('reads the same messages however the bytes are cut into TCP reads', async () => {
    const messages = fc.array(
      fc.oneof(
        fc.string({ maxLength: 300, unit: 'grapheme' }).map((text) => ({ text, binary: false })),
        fc
          .uint8Array({ maxLength: 300 })
          .map((bytes) => ({ text: Buffer.from(bytes).toString('hex'), binary: true })),
      ),
      { minLength: 1, maxLength: 8 },
    );
    await fc.assert(
      fc.asyncProperty(messages, fc.array(fc.nat(), { maxLength: 12 }), async (sent, cuts) => {
        const p = await pair();
        // Each message as up to three fragments, the whole stream cut at arbitrary points.
        const stream = Buffer.concat(
          sent.map(({ text, binary }) => {
            const data = binary ? Buffer.from(text, 'hex') : Buffer.from(text);
            const third = Math.floor(data.length / 3);
            return Buffer.concat([
              frame(binary ? 2 : 1, data.subarray(0, third), { fin: false }),
              frame(0, data.subarray(third, 2 * third), { fin: false }),
              frame(0, data.subarray(2 * third)),
            ]);
          }),
        );
        const points = [...new Set(cuts.map((c) => c % stream.length))].sort((a, b) => a - b);
        let from = 0;
        for (const point of [...points, stream.length]) {
          if (point > from) {
            const piece = stream.subarray(from, point);
            // One piece per read: wait until the server has taken it.
            await new Promise<void>((resolve) => p.client.write(piece, () => resolve()));
            await new Promise((resolve) => setImmediate(resolve));
          }
          from = point;
        }
        await until(() => p.messages.length === sent.length || undefined, 5000, 'every message');
        expect(p.messages).toEqual(sent);
        p.client.destroy();
        await p.closedWith;
      }),
      { numRuns: 40 },
    );
  });
});

describe('WireSocket: a large message in small reads', () => {
  it('is read whole, past the room first kept for it (grown by doubling, never re-parsed)', async () => {
    const p = await pair(200_000);
    const data = Buffer.from(Array.from({ length: 900 }, (_, i) => i % 251));
    const big = Buffer.concat(Array(100).fill(data));
    const bytes = frame(2, big);
    // 90,000 bytes (several times the first room) in 1,000-byte reads, then a text message.
    for (let at = 0; at < bytes.length; at += 1000) {
      await new Promise<void>((resolve) =>
        p.client.write(bytes.subarray(at, at + 1000), () => resolve()),
      );
      await new Promise((resolve) => setImmediate(resolve));
    }
    p.client.write(frame(1, 'next'));
    await until(() => p.messages.length === 2 || undefined, 5000, 'both messages');
    expect(p.messages[0]).toEqual({ text: big.toString('hex'), binary: true });
    expect(p.messages[1]).toEqual({ text: 'next', binary: false });
    p.client.destroy();
    await p.closedWith;
  });
});

describe('WireSocket: closing', () => {
  it('answers a close frame with the same code, ends the connection, reports the code', async () => {
    const p = await pair();
    p.client.write(frame(8, closePayload(1001, 'going away')));
    expect(await serverCloseCode(p)).toBe(1001);
    await p.clientEnded;
    p.client.end();
    expect(await p.closedWith).toBe(1001);
    expect(p.wire.readyState).toBe(CLOSED);
  });

  it('answers a close frame without a code with one without a code (1005)', async () => {
    const p = await pair();
    p.client.write(frame(8, Buffer.alloc(0)));
    expect(await serverCloseCode(p)).toBeUndefined();
    p.client.end();
    expect(await p.closedWith).toBe(1005);
  });

  it('closes with a code of its own, and ends once the client answers', async () => {
    const p = await pair();
    p.wire.close(4000);
    expect(await serverCloseCode(p)).toBe(4000);
    // Nothing is sent after the close frame.
    p.wire.send('too late');
    p.client.write(frame(8, closePayload(4000)));
    await p.clientEnded;
    p.client.end();
    expect(await p.closedWith).toBe(4000);
    expect(p.frames().map((f) => f.opcode)).toEqual([8]);
  });

  it('does not answer a ping while more than 1 MiB it sent is unread', async () => {
    const p = await pair();
    const unread = await fillUnread(p);
    // A ping, then a message to know the ping was read: no pong was queued behind the rest.
    p.client.write(Buffer.concat([frame(9, 'are you there'), frame(1, 'after')]));
    await until(() => p.messages.length === 1, 5000, 'the message after the ping');
    expect(p.messages[0]!.text).toBe('after');
    expect(p.wire.bufferedAmount).toBe(unread);
    p.wire.terminate();
  });

  it('ends when the client ends its side without a close frame (1006)', async () => {
    const p = await pair();
    p.client.end();
    expect(await p.closedWith).toBe(1006);
  });
});

describe('WireSocket: a close that does not finish', () => {
  const saved = { ...wireSocketDefaults };
  beforeAll(() => {
    wireSocketDefaults.closeTimeoutMs = 300;
  });
  afterAll(() => {
    Object.assign(wireSocketDefaults, saved);
  });

  const cases: Array<[string, (p: Pair) => void]> = [
    [
      'the client sent a close frame and never ends its side',
      (p) => p.client.write(frame(8, closePayload(1000))),
    ],
    ['the server closed and the client never answers', (p) => p.wire.close(1000)],
    ['the client broke the protocol and never ends its side', (p) => p.client.write(frame(3, 'x'))],
  ];
  for (const [what, start] of cases)
    it(`${what}: the TCP connection is cut after the close timeout`, async () => {
      const p = await pair();
      const started = Date.now();
      start(p);
      // The server's end is closed by the timer (the client, half-open, never closes it).
      await p.closedWith;
      expect(Date.now() - started).toBeGreaterThanOrEqual(250);
      expect(p.wire.readyState).toBe(CLOSED);
      expect(p.wire.socket.destroyed).toBe(true);
    });

  it('the client ended its side while not reading: the end cannot flush, and is cut', async () => {
    const p = await pair();
    // More than the kernel holds, unread: the server's end of the connection cannot finish.
    await fillUnread(p);
    const started = Date.now();
    p.client.end();
    expect(await p.closedWith).toBe(1006);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(p.wire.socket.destroyed).toBe(true);
  });
});

describe('WireSocket: what a client may not send', () => {
  const faults: Array<[string, Buffer, number]> = [
    ['an unmasked frame', frame(1, 'hi', { mask: false }), 1002],
    ['a reserved bit set', frame(1, 'hi', { rsv: 4 }), 1002],
    ['an unknown opcode', frame(3, 'hi'), 1002],
    ['an unknown control opcode', frame(11, 'hi'), 1002],
    ['a continuation with nothing to continue', frame(0, 'hi'), 1002],
    ['a fragmented ping', frame(9, 'hi', { fin: false }), 1002],
    ['a ping over 125 bytes', frame(9, Buffer.alloc(126)), 1002],
    [
      'a new message inside a fragmented one',
      Buffer.concat([frame(1, 'a', { fin: false }), frame(1, 'b')]),
      1002,
    ],
    ['a close frame of one byte', frame(8, Buffer.from([3])), 1002],
    ['a close code no peer may send (1005)', frame(8, closePayload(1005)), 1002],
    ['a close code out of range (2000)', frame(8, closePayload(2000)), 1002],
    ['text that is not UTF-8', frame(1, Buffer.from([0x68, 0xc3, 0x28])), 1007],
    [
      'a close reason that is not UTF-8',
      frame(8, closePayload(1000, '\u0000').fill(0xff, 2)),
      1007,
    ],
    ['a message over the size limit', frame(2, Buffer.alloc(MAX + 1)), 1009],
    [
      'fragments adding up past the size limit',
      Buffer.concat([frame(1, 'x'.repeat(MAX), { fin: false }), frame(0, 'y')]),
      1009,
    ],
    ['a 64-bit length over 4 GiB', Buffer.from([0x82, 0xff, 0, 0, 0, 1, 0, 0, 0, 0]), 1009],
    [
      'a message in more than 16,384 fragments (empty ones too)',
      Buffer.concat([
        frame(1, '', { fin: false }),
        ...Array(16_384).fill(frame(0, '', { fin: false })),
      ]),
      1008,
    ],
  ];

  for (const [what, bytes, code] of faults) {
    it(`${what}: a close frame with ${code}, the connection ended, nothing read after it`, async () => {
      const p = await pair();
      p.client.write(Buffer.concat([bytes, frame(1, 'after')]));
      expect(await serverCloseCode(p)).toBe(code);
      await p.clientEnded;
      p.client.end();
      await p.closedWith;
      expect(p.messages.map((m) => m.text)).not.toContain('after');
    });
  }

  it('refuses an oversized message on its announced length, before its payload arrives', async () => {
    const p = await pair();
    p.client.write(frame(1, '', { length: 5000 }).subarray(0, 8));
    expect(await serverCloseCode(p)).toBe(1009);
  });
});

describe('WireSocket: the handshake', () => {
  const request = (headers: Record<string, string>, method = 'GET'): IncomingMessage =>
    ({ method, headers }) as unknown as IncomingMessage;
  const good = {
    upgrade: 'websocket',
    connection: 'Upgrade',
    'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
    'sec-websocket-version': '13',
  };

  it("answers 101 with RFC 6455's accept value for its sample key", () => {
    const answer = handshakeAnswer(request(good));
    expect(answer).toBe(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n',
    );
    expect(
      handshakeAnswer(request({ ...good, 'sec-websocket-protocol': 'chat, superchat' })),
    ).toContain('Sec-WebSocket-Protocol: chat\r\n');
  });

  it('refuses what ws refuses, with its statuses', () => {
    const refusal = (r: IncomingMessage) => handshakeAnswer(r) as HandshakeRefusal;
    expect(refusal(request(good, 'POST')).status).toBe(405);
    expect(refusal(request({ ...good, upgrade: 'h2c' })).status).toBe(400);
    expect(refusal(request({ ...good, 'sec-websocket-key': 'short' })).status).toBe(400);
    const version = refusal(request({ ...good, 'sec-websocket-version': '12' }));
    expect(version).toMatchObject({
      status: 400,
      headers: { 'Sec-WebSocket-Version': '13, 8' },
    });
  });
});
