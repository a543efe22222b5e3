import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { until } from './assertions.js';
import { freePort } from './ports.js';

/** A real nginx load balancer on loopback in front of pushcast nodes. */
export interface NginxFixture {
  url: string;
  port: number;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Starts nginx (Debian package) with WebSocket proxying to the given upstream ports. Ports marked
 * `backup` only get traffic while the others are down, which lets a test know where a client lands.
 */
export async function startNginx(
  upstreams: Array<{ port: number; backup?: boolean }>,
): Promise<NginxFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'pushcast-nginx-'));
  chmodSync(dir, 0o755);
  const port = await freePort();
  const servers = upstreams
    .map(
      (u) =>
        `    server 127.0.0.1:${u.port} max_fails=1 fail_timeout=2s${u.backup ? ' backup' : ''};`,
    )
    .join('\n');
  const conf = `
worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
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
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://pushcast;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_read_timeout 3600s;
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_connect_timeout 2s;
      proxy_next_upstream error timeout http_502 http_503;
    }
  }
}
`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  const bin = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p));
  if (!bin) throw new Error('nginx is not installed: run  apt-get install -y nginx');
  const child: ChildProcess = spawn(
    bin,
    ['-c', join(dir, 'nginx.conf'), '-p', dir, '-e', join(dir, 'error.log')],
    {
      stdio: 'ignore',
    },
  );
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const kill = (): void => {
    if (child.exitCode === null && child.pid) process.kill(child.pid, 'SIGKILL');
  };
  process.once('exit', kill);
  await waitForPort(port, 5000);
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.pid) process.kill(child.pid, 'SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
    kill();
    process.off('exit', kill);
    rmSync(dir, { recursive: true, force: true });
  };
  return { url: `http://127.0.0.1:${port}`, port, stop, [Symbol.asyncDispose]: stop };
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const accepts = (): Promise<boolean> =>
    new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
  await until(accepts, timeoutMs, `nginx to listen on ${port}`);
}
