/**
 * A load worker's subscribers: WebSockets held by subscriber number for as long as the benchmark
 * keeps a target, each joined to one channel or more, counting what they receive and sampling how
 * long each message took from its publisher (the `t` in its data) without parsing the message.
 * Scenarios on the same target reuse them: opening a connection costs a server far more than a
 * join on one it holds.
 */
import { performance } from 'node:perf_hooks';
import { WebSocket } from 'ws';
import { token } from '../support.js';
import { epochMs, LatencySample } from './latency-sample.js';
import { channelFor, type SubscribeRequest, type SubscribeResult } from './load-messages.js';
import { wireOf, type Wire, type WireSession } from './wire.js';

const T_KEY = Buffer.from('"t":');
const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;

/** Latencies kept per window: enough for stable percentiles, small enough to send over IPC. */
const SAMPLE_CAPACITY = 200_000;

/** An open subscriber: its socket, its protocol state, and its joins awaiting an answer. */
interface Subscriber {
  ws: WebSocket;
  session: WireSession;
  joins: Map<string, (error: string | undefined) => void>;
}

export class Subscribers {
  received = 0;
  dropped = 0;
  readonly latency = new LatencySample(SAMPLE_CAPACITY);
  private readonly open = new Map<number, Subscriber>();
  private closing = false;

  /** Joins each subscriber asked for, opening it first if needed; failures are counted, never retried. */
  async subscribe(request: SubscribeRequest): Promise<SubscribeResult> {
    this.closing = false;
    const wire = wireOf(request.wire);
    const toOpen = request.indices.filter((i) => !this.open.has(i));
    // Signed before the clock starts: the time is the server's connect and join, not our signing.
    const tokens = new Map<number, string>();
    if (request.auth)
      await Promise.all(
        toOpen.map(async (i) =>
          tokens.set(i, await token(`${request.userPrefix}-${i}`, ['bench:*'])),
        ),
      );
    const result: SubscribeResult = {
      connected: 0,
      rejoined: 0,
      failed: 0,
      errors: {},
      joined: {},
      timings: [],
      wallS: 0,
    };
    const start = performance.now();
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < request.indices.length) {
        const i = request.indices[next++]!;
        const channel = channelFor(request.channel, i);
        const held = this.open.get(i);
        const outcome = held
          ? await this.join(held, channel, request.timeoutMs)
          : await this.connect(
              wire,
              i,
              wire.url(request.urls[i % request.urls.length]!),
              tokens.get(i),
              channel,
              request.timeoutMs,
            );
        if (typeof outcome === 'string') {
          result.failed += 1;
          result.errors[outcome] = (result.errors[outcome] ?? 0) + 1;
          continue;
        }
        if (held) result.rejoined += 1;
        else {
          result.connected += 1;
          result.timings.push(outcome);
        }
        result.joined[channel] = (result.joined[channel] ?? 0) + 1;
      }
    };
    await Promise.all(
      [...Array(Math.min(request.inFlight, request.indices.length)).keys()].map(lane),
    );
    result.wallS = (performance.now() - start) / 1000;
    return result;
  }

  /** Opens subscriber `i` and joins it: the ms it took, or why it failed. */
  private connect(
    wire: Wire,
    i: number,
    url: string,
    jwt: string | undefined,
    channel: string,
    timeoutMs: number,
  ): Promise<number | string> {
    const start = performance.now();
    const ws = new WebSocket(url, { perMessageDeflate: false, skipUTF8Validation: true });
    const joins = new Map<string, (error: string | undefined) => void>();
    return new Promise((resolve) => {
      let settled = false;
      const fail = (error: string): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        ws.terminate();
        resolve(error);
      };
      const timer = setTimeout(() => fail('timeout'), timeoutMs);
      const subscriber: Subscriber = {
        ws,
        joins,
        session: wire.session(ws, jwt, {
          ready: () => {
            joins.set(channel, (error) => {
              if (error !== undefined) return fail(error);
              if (settled) return;
              settled = true;
              clearTimeout(timer);
              this.open.set(i, subscriber);
              resolve(performance.now() - start);
            });
            subscriber.session.join(channel);
          },
          joined: (c) => answer(joins, c, undefined),
          refused: (code, c) => (c === undefined ? fail(code) : answer(joins, c, code)),
          message: (frame) => this.onMessage(frame),
        }),
      };
      ws.on('open', () => subscriber.session.opened());
      ws.on('message', (data: Buffer) => subscriber.session.frame(data));
      ws.on('error', (err: Error & { code?: string }) =>
        fail(err.code ?? err.message.slice(0, 80)),
      );
      ws.on('close', () => {
        if (!settled) return fail('closed');
        for (const c of [...joins.keys()]) answer(joins, c, 'closed');
        // Closed by the server while we still wanted it (a slow-consumer cut, a crash).
        if (this.open.get(i) === subscriber) {
          this.open.delete(i);
          if (!this.closing) this.dropped += 1;
        }
      });
    });
  }

  /** Joins an open subscriber to one more channel: the ms it took, or why it failed. */
  private join(
    subscriber: Subscriber,
    channel: string,
    timeoutMs: number,
  ): Promise<number | string> {
    const start = performance.now();
    return new Promise((resolve) => {
      const timer = setTimeout(() => answer(subscriber.joins, channel, 'timeout'), timeoutMs);
      subscriber.joins.set(channel, (error) => {
        clearTimeout(timer);
        resolve(error ?? performance.now() - start);
      });
      subscriber.session.join(channel);
    });
  }

  private onMessage(frame: Buffer): void {
    this.received += 1;
    const at = frame.indexOf(T_KEY);
    if (at < 0) return;
    const from = at + T_KEY.length;
    let to = from;
    for (let c = frame[to]; c !== undefined && ((c >= ZERO && c <= NINE) || c === DOT);)
      c = frame[++to];
    this.latency.add(epochMs() - Number(frame.toString('latin1', from, to)));
  }

  /** Waits up to `waitMs` for the server to close the sockets, then terminates the rest. */
  async close(waitMs: number): Promise<void> {
    this.closing = true;
    const deadline = Date.now() + waitMs;
    while (this.open.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await Promise.all(
      [...this.open.values()].map(
        ({ ws }) =>
          new Promise<void>((resolve) => {
            if (ws.readyState === WebSocket.CLOSED) return resolve();
            ws.once('close', () => resolve());
            ws.terminate();
          }),
      ),
    );
    this.open.clear();
  }
}

/** Settles the join awaiting an answer for `channel`, if one is. */
function answer(
  joins: Map<string, (error: string | undefined) => void>,
  channel: string,
  error: string | undefined,
): void {
  const done = joins.get(channel);
  if (!done) return;
  joins.delete(channel);
  done(error);
}
