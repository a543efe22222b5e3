import { Counter, Gauge, Histogram, collectDefaultMetrics, type Registry } from 'prom-client';
import { RateMeter } from './rate-meter.js';

/** Live values the gauges read at scrape time (nothing is counted per socket). */
export interface MetricSources {
  /** Every socket of the node, direct Socket.IO and Phoenix-protocol connections included. */
  sockets(): number;
  /** Phoenix-protocol (PushEx client) connections alone, when the endpoint is on. */
  phoenixSockets?(): number;
  subscriptions(): number;
  inflight(): number;
  draining(): boolean;
  redisUp(): boolean;
}

/**
 * pushcast's metrics, on the registry it is given (not prom-client's global one, so several nodes
 * can live in one process). Counting a delivery adds the room size once per broadcast.
 */
export class PushMetrics {
  readonly requestedRate = new RateMeter();
  readonly deliveredRate = new RateMeter();
  private readonly requested: Counter;
  private readonly delivered: Counter;
  private readonly apiRequests: Counter<'route' | 'method' | 'status'>;
  private readonly apiDuration: Histogram<'route' | 'method'>;
  private readonly lag: Histogram;
  private readonly slowConsumers: Counter;

  constructor(
    readonly registry: Registry,
    sources: MetricSources,
  ) {
    collectDefaultMetrics({ register: registry });
    const registers = [registry];
    new Gauge({
      name: 'pushcast_sockets_connected',
      help: 'Sockets connected to this node.',
      registers,
      collect() {
        this.set(sources.sockets());
      },
    });
    if (sources.phoenixSockets) {
      const phoenixSockets = sources.phoenixSockets.bind(sources);
      new Gauge({
        name: 'pushcast_phoenix_sockets_connected',
        help: 'Phoenix-protocol (PushEx client) sockets on this node, also in pushcast_sockets_connected.',
        registers,
        collect() {
          this.set(phoenixSockets());
        },
      });
    }
    new Gauge({
      name: 'pushcast_channel_subscriptions',
      help: 'Channel subscriptions (socket x channel) on this node.',
      registers,
      collect() {
        this.set(sources.subscriptions());
      },
    });
    new Gauge({
      name: 'pushcast_inflight_pushes',
      help: 'Pushes accepted and not yet handed to the cluster bus.',
      registers,
      collect() {
        this.set(sources.inflight());
      },
    });
    new Gauge({
      name: 'pushcast_draining',
      help: '1 while this node drains for shutdown.',
      registers,
      collect() {
        this.set(sources.draining() ? 1 : 0);
      },
    });
    new Gauge({
      name: 'pushcast_redis_up',
      help: '1 while the cluster bus is connected (always 1 for a single in-memory node).',
      registers,
      collect() {
        this.set(sources.redisUp() ? 1 : 0);
      },
    });
    this.requested = new Counter({
      name: 'pushcast_pushes_requested_total',
      help: 'Pushes accepted by this node (one per push, whatever its channel count).',
      registers,
    });
    this.delivered = new Counter({
      name: 'pushcast_pushes_delivered_total',
      help: 'Messages written to sockets by this node (one per socket).',
      registers,
    });
    this.apiRequests = new Counter({
      name: 'pushcast_api_requests_total',
      help: 'HTTP API requests by route and status.',
      labelNames: ['route', 'method', 'status'],
      registers,
    });
    this.apiDuration = new Histogram({
      name: 'pushcast_api_request_duration_seconds',
      help: 'HTTP API request duration.',
      labelNames: ['route', 'method'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.lag = new Histogram({
      name: 'pushcast_push_delivery_lag_seconds',
      help: 'Time from a push being accepted to its write on this node.',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
      registers,
    });
    this.slowConsumers = new Counter({
      name: 'pushcast_slow_consumers_disconnected_total',
      help: 'Sockets this node disconnected because their unsent output passed the limit.',
      registers,
    });
  }

  /** A push was accepted. */
  pushRequested(): void {
    this.requested.inc();
    this.requestedRate.add();
  }

  /** A broadcast wrote a message to `count` local sockets; `ts` is when the push was accepted. */
  pushDelivered(count: number, ts: number): void {
    if (count <= 0) return;
    this.delivered.inc(count);
    this.deliveredRate.add(count);
    this.lag.observe(Math.max(0, Date.now() - ts) / 1000);
  }

  /** A socket was disconnected for not reading fast enough (limits.maxSocketBufferKb). */
  slowConsumerDisconnected(): void {
    this.slowConsumers.inc();
  }

  /** An API request finished. */
  apiRequest(route: string, method: string, status: number, seconds: number): void {
    this.apiRequests.inc({ route, method, status: String(status) });
    this.apiDuration.observe({ route, method }, seconds);
  }
}
