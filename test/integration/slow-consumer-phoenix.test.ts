import { describe, expect, it } from 'vitest';
import { until } from '../support/assertions.js';
import { connectClient, postJson, startNode, token, type TestClient } from '../support/nodes.js';
import { rawConnect, wsUrl, type RawPhoenix } from '../support/phoenix.js';
import { captureLog } from '../support/log-capture.js';

/**
 * Slow consumers on the Phoenix endpoint (README "Abuse, slow consumers and storms"): one watch
 * for both transports (src/realtime/slow-consumers.ts), so a Phoenix connection whose unsent
 * output passes `limits.maxSocketBufferKb` is cut alone, logged and counted like a Socket.IO
 * socket; the others on the channel, of either transport, keep receiving.
 */

const LIMIT_KB = 256;
const LIMIT = LIMIT_KB * 1024;
/** Bulky pushes: ~60 KB of `data` each. */
const PAD = 'x'.repeat(60_000);
/** The kernel takes the first few MB a stalled reader leaves unread; a bound on the loop. */
const MAX_PUSHES = 400;

describe('slow consumers on the Phoenix endpoint', () => {
  it('a Phoenix client that stops reading is cut alone; a Phoenix and a Socket.IO client on the channel get every push', async () => {
    const { logger, lines: warnings } = captureLog();
    const node = await startNode(
      { limits: { maxSocketBufferKb: LIMIT_KB }, history: { size: 2 * MAX_PUSHES } },
      undefined,
      { logger },
    );
    const channel = 'slowpx:a';
    const url = `${wsUrl(node)}/websocket?token=${await token({ sub: 'px', channels: [channel] })}&vsn=2.0.0`;
    let sio: TestClient | undefined;
    const raws: RawPhoenix[] = [];
    try {
      const join = async (raw: RawPhoenix): Promise<void> => {
        raw.send(['1', '1', channel, 'phx_join', {}]);
        expect(await raw.reply('1')).toMatchObject({ status: 'ok' });
      };
      const slow = await rawConnect(url);
      const reader = await rawConnect(url);
      raws.push(slow, reader);
      await join(slow);
      await join(reader);
      sio = await connectClient(node.url, {
        token: await token({ sub: 'sio', channels: [channel] }),
      });
      expect(await sio.join(channel)).toMatchObject({ ok: true });
      const msgs = (raw: RawPhoenix) => raw.frames.filter((f) => f[3] === 'msg').length;
      const cut = () =>
        warnings.filter(
          (l) => l.msg === 'slow consumer disconnected: unsent output over the limit',
        );

      // The slow one stops reading; pushes go on, each read by the others before the next, until
      // the node cuts it off.
      slow.ws.pause();
      let pushed = 0;
      while (cut().length === 0) {
        if (pushed >= MAX_PUSHES) throw new Error(`still not cut after ${MAX_PUSHES} pushes`);
        const res = await postJson(`${node.url}/api/push`, {
          channel,
          event: 'bulk',
          data: { i: pushed, pad: PAD },
        });
        expect(res.status).toBe(200);
        pushed += 1;
        await until(
          () => msgs(reader) === pushed && sio!.messages.length === pushed,
          10_000,
          'the reading clients to get the push',
        );
      }

      // Cut alone, at the transport level, said once (no payload) and counted.
      expect(cut()).toHaveLength(1);
      expect(cut()[0]).toMatchObject({ level: 40, transport: 'phoenix', limit: LIMIT });
      expect(cut()[0]!.bytes).toBeGreaterThan(LIMIT);
      expect(JSON.stringify(warnings)).not.toContain('xxxxxxxx');
      const metrics = await (await fetch(`${node.url}/metrics`)).text();
      expect(metrics).toMatch(/^pushcast_slow_consumers_disconnected_total 1$/m);
      slow.ws.resume();
      expect((await slow.closed).code).toBe(1006);
      expect(msgs(slow)).toBeLessThan(pushed);

      // The others are still connected and served.
      await postJson(`${node.url}/api/push`, { channel, event: 'after', data: {} });
      await until(
        () => msgs(reader) === pushed + 1 && sio!.messages.length === pushed + 1,
        10_000,
        'a push after the cut',
      );
      expect(sio.socket.connected).toBe(true);
    } finally {
      sio?.close();
      for (const raw of raws) raw.ws.terminate();
      await node.stop();
    }
  }, 120_000);
});
