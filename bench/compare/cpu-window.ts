/**
 * CPU used during a measured window, read from outside the processes: the target's nodes (from
 * /proc), Redis apart from them (its own INFO cpu, children included), this process, and the whole
 * machine, so that what processes outside the benchmark took can be told apart (a machine shared
 * with other work gives the servers less than it seems).
 */
import { performance } from 'node:perf_hooks';
import type { Redis } from 'ioredis';
import { cpuSeconds, machineBusySeconds } from './proc.js';
import type { Target } from './targets.js';

/** CPU seconds over a window. */
export interface WindowCpu {
  /** From open to `endAt`: the window measured. */
  wallS: number;
  /** From open to close: the span every CPU figure below covers. */
  spanS: number;
  /** All the target's nodes together. */
  nodesCpuS: number;
  /** Redis (two-node runs); undefined without one. */
  redisCpuS: number | undefined;
  /** This process (the benchmark's driver). */
  selfCpuS: number;
  /** Every core of the machine, busy (not idle, not waiting for I/O). */
  machineBusyS: number;
}

/** Two windows measured one after the other, as one (their spans and CPU added). */
export function addWindows(a: WindowCpu, b: WindowCpu): WindowCpu {
  return {
    wallS: a.wallS + b.wallS,
    spanS: a.spanS + b.spanS,
    nodesCpuS: a.nodesCpuS + b.nodesCpuS,
    redisCpuS:
      a.redisCpuS === undefined || b.redisCpuS === undefined
        ? undefined
        : a.redisCpuS + b.redisCpuS,
    selfCpuS: a.selfCpuS + b.selfCpuS,
    machineBusyS: a.machineBusyS + b.machineBusyS,
  };
}

/** Redis's CPU seconds so far (main thread and children, user and system). */
async function redisCpuSeconds(admin: Redis): Promise<number> {
  const info = await admin.info('cpu');
  const field = (name: string): number =>
    Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? 0);
  return (
    field('used_cpu_user') +
    field('used_cpu_sys') +
    field('used_cpu_user_children') +
    field('used_cpu_sys_children')
  );
}

export class CpuWindow {
  private constructor(
    private readonly target: Target,
    private readonly admin: Redis | undefined,
    private readonly start: {
      at: number;
      nodes: number;
      redis: number;
      self: NodeJS.CpuUsage;
      machine: number;
    },
  ) {}

  /** Reads every counter now. */
  static async open(target: Target, admin?: Redis): Promise<CpuWindow> {
    return new CpuWindow(target, admin, {
      at: performance.now(),
      nodes: nodesCpu(target),
      redis: admin ? await redisCpuSeconds(admin) : 0,
      self: process.cpuUsage(),
      machine: machineBusySeconds(),
    });
  }

  /** CPU since {@link open}; `endAt` (performance.now()) sets the window's end, default now. */
  async close(endAt?: number): Promise<WindowCpu> {
    const nodes = nodesCpu(this.target);
    const machine = machineBusySeconds();
    const self = process.cpuUsage(this.start.self);
    const redis = this.admin ? await redisCpuSeconds(this.admin) : undefined;
    return {
      wallS: ((endAt ?? performance.now()) - this.start.at) / 1000,
      spanS: (performance.now() - this.start.at) / 1000,
      nodesCpuS: nodes - this.start.nodes,
      redisCpuS: redis === undefined ? undefined : redis - this.start.redis,
      selfCpuS: (self.user + self.system) / 1e6,
      machineBusyS: machine - this.start.machine,
    };
  }
}

function nodesCpu(target: Target): number {
  return target.nodes.reduce((a, n) => a + cpuSeconds(n.pid), 0);
}
