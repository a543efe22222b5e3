import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectExactly, subscriber, until } from '../support/assertions.js';
import { startNode, type TestNode } from '../support/nodes.js';
import { freePort } from '../support/ports.js';

// A managed Redis speaks TLS and wants a password: the settings carry both (`rediss://` and
// REDIS_PASSWORD). A real redis-server with TLS only (no plain port) and requirepass, a
// self-signed certificate made for the test.

describe('Redis over TLS with a password', () => {
  let dir: string;
  let redis: ChildProcess | undefined;
  let port: number;
  let node: TestNode | undefined;
  const password = 'tls-test-password-0123456789';

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pushcast-tls-'));
    const made = spawnSync('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ]);
    expect(made.status).toBe(0);
    port = await freePort();
    redis = spawn(
      'redis-server',
      [
        '--port',
        '0',
        '--tls-port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--tls-cert-file',
        join(dir, 'cert.pem'),
        '--tls-key-file',
        join(dir, 'key.pem'),
        '--tls-ca-cert-file',
        join(dir, 'cert.pem'),
        '--tls-auth-clients',
        'no',
        '--requirepass',
        password,
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    redis.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    await until(
      () => output.includes('Ready to accept connections'),
      5000,
      'redis-server over TLS',
    );
    // The certificate is the test's own: trust it in this worker only.
    process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
    node = await startNode({
      redisUrl: `rediss://127.0.0.1:${port}`,
      redis: { password },
    });
  });
  afterAll(async () => {
    await node?.stop();
    if (redis?.pid !== undefined && redis.exitCode === null) {
      const exited = new Promise((r) => redis!.once('exit', r));
      redis.kill('SIGTERM');
      await exited;
    }
    delete process.env.NODE_TLS_REJECT_UNAUTHORIZED;
    rmSync(dir, { recursive: true, force: true });
  });

  it('connects with rediss:// and REDIS_PASSWORD, records history and delivers', async () => {
    const n = node!;
    expect((await fetch(`${n.url}/readyz`)).status).toBe(200);
    const client = await subscriber(n, ['tls:1']);
    try {
      await expectExactly(n, client, 'tls:1', 0);
      expect(client.messages[0]!.offset).toMatch(/:1$/);
    } finally {
      client.close();
    }
  });

  it('refuses to start with a wrong password', async () => {
    await expect(
      startNode({
        redisUrl: `rediss://127.0.0.1:${port}`,
        redis: { password: 'wrong-password-0123' },
      }),
    ).rejects.toThrow();
  });
});
