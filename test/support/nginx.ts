import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { until } from './assertions.js';
import { freePort } from './ports.js';
import { canConnect } from './probes.js';

/** A real nginx load balancer on loopback in front of pushcast nodes. */
export interface NginxFixture {
  url: string;
  port: number;
  /** The master process (its worker is its child). */
  pid: number;
  /** nginx's error log (warn and above); removed by `stop`. */
  errorLog: string;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** One upstream node. */
export interface NginxUpstream {
  port: number;
  /** Only gets traffic while the others are down (lets a test know where a client lands). */
  backup?: boolean;
  /**
   * Never marked down (`max_fails=0`, ingress-nginx's default); otherwise one failure takes it out
   * for 2 s (`max_fails=1 fail_timeout=2s`).
   */
  neverDown?: boolean;
}

/** Sizing and timeouts; the defaults suit the tests. */
export interface NginxOptions {
  /** Connections the one worker holds (client side and upstream side count alike). */
  workerConnections?: number;
  /** The listening socket's accept queue (nginx's default 511 when unset). */
  backlog?: number;
  /** How long a connect to an upstream may take before the next is tried. */
  connectTimeoutS?: number;
}

/**
 * Starts nginx (Debian package) with WebSocket proxying to the given upstream ports, on one
 * worker whose descriptors stay under the 20,000 a process may open here.
 */
export async function startNginx(
  upstreams: NginxUpstream[],
  options: NginxOptions = {},
): Promise<NginxFixture> {
  const bin = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p));
  if (!bin) throw new Error('nginx is not installed: run  apt-get install -y nginx');
  const dir = mkdtempSync(join(tmpdir(), 'pushcast-nginx-'));
  chmodSync(dir, 0o755);
  const port = await freePort();
  const errorLog = join(dir, 'error.log');
  const servers = upstreams
    .map(
      (u) =>
        `    server 127.0.0.1:${u.port} ${u.neverDown ? 'max_fails=0' : 'max_fails=1 fail_timeout=2s'}${u.backup ? ' backup' : ''};`,
    )
    .join('\n');
  const conf = `
worker_processes 1;
worker_rlimit_nofile 20000;
daemon off;
pid ${dir}/nginx.pid;
error_log ${errorLog} warn;
events { worker_connections ${options.workerConnections ?? 4096}; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  upstream pushcast {
${servers}
  }
  server {
    listen 127.0.0.1:${port}${options.backlog ? ` backlog=${options.backlog}` : ''};
    location / {
      proxy_pass http://pushcast;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_read_timeout 3600s;
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_connect_timeout ${options.connectTimeoutS ?? 2}s;
      proxy_next_upstream error timeout http_502 http_503;
    }
  }
}
`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  const child: ChildProcess = spawn(
    bin,
    ['-c', join(dir, 'nginx.conf'), '-p', dir, '-e', errorLog],
    { stdio: 'ignore' },
  );
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const kill = (): void => {
    if (child.exitCode === null && child.pid) process.kill(child.pid, 'SIGKILL');
  };
  process.once('exit', kill);
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.pid) process.kill(child.pid, 'SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
    kill();
    process.off('exit', kill);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await until(
      async () => child.exitCode === null && (await canConnect(port)),
      5000,
      `nginx to listen on ${port}`,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    pid: child.pid ?? -1,
    errorLog,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
