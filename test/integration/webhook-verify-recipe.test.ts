import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '../support/assertions.js';
import { startNode, type TestClient, type TestNode } from '../support/nodes.js';
import {
  memberOf,
  startWebhookReceiver,
  type ReceivedRequest,
  type WebhookReceiver,
} from '../support/webhook-receiver.js';

const SECRET = 'webhook-test-secret-0123456789';
/** The receiver URL the README's curl line posts to (replaced by the test receiver's). */
const README_URL = 'http://localhost:8080/hooks';
// A user id that a careless shell recipe would mangle: printf directives, a backslash and a
// quote (escaped in the JSON body), non-ASCII bytes.
const USER = 'zoë "100%s" \\n \'x\'';

/** The README's openssl recipe: the verifying lines and the signing + curl lines, as written. */
function readmeRecipe(): { verify: string; send: string } {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('\n## Webhooks\n'));
  const block = /With openssl:[\s\S]*?```sh\n([\s\S]*?)```/.exec(section)?.[1];
  if (block === undefined)
    throw new Error('README.md: no ```sh block after "With openssl:" in the Webhooks section');
  const [verify, send, ...rest] = block.trim().split(/\n\s*\n/);
  expect(rest, 'the recipe is two paragraphs: verify, then sign and send').toEqual([]);
  expect(verify).toMatch(/^expected=.*openssl dgst/);
  expect(verify).toContain('echo valid');
  expect(send).toContain(README_URL);
  return { verify: verify!, send: send! };
}

/** Fails (never skips) when a tool the recipe runs is missing, saying how to install it. */
function requireTool(bin: string, pkg: string): void {
  if (spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0)
    throw new Error(
      `${bin} is not installed (the README recipe runs it): sudo apt-get update && sudo apt-get install -y ${pkg}`,
    );
}

/**
 * Runs `script` with sh in `dir`, with only PATH and `env` set, without blocking this process's
 * event loop (the receiver curl posts to lives in it).
 */
function sh(
  script: string,
  dir: string,
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', script], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The README's "Verifying a request" with openssl and curl, run as written against a real delivery. */
describe('README: verifying a webhook with openssl', () => {
  let receiver: WebhookReceiver;
  let node: TestNode;
  let socket: TestClient;
  let delivered: ReceivedRequest;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pushcast-recipe-'));
    receiver = await startWebhookReceiver(SECRET);
    node = await startNode({ webhooks: { url: receiver.url, secret: SECRET } });
    socket = await memberOf(node.url, USER, 'wh:recipe');
    delivered = await until(
      () => receiver.requests.find((r) => r.events.some((e) => e.userId === USER)),
      8000,
      'a delivered member_added',
    );
  });
  afterAll(async () => {
    socket?.close();
    await node?.stop();
    await receiver?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('computes the X-Pushcast-Signature of a delivered request, and prints valid for it only', async () => {
    requireTool('openssl', 'openssl');
    const { verify } = readmeRecipe();
    expect(delivered.body).toContain('100%s');
    writeFileSync(join(dir, 'body.json'), delivered.body);
    const env = {
      ts: delivered.timestamp!,
      sig: delivered.signature!,
      PUSHCAST_WEBHOOK_SECRET: SECRET,
    };
    // The recipe's first line as written, then what it computed.
    const computed = await sh(`${verify.split('\n')[0]!}\nprintf '%s' "$expected"`, dir, env);
    expect(computed.stderr).toBe('');
    expect(computed.stdout).toBe(delivered.signature);
    expect(await sh(verify, dir, env)).toMatchObject({ code: 0, stdout: 'valid\n' });

    writeFileSync(join(dir, 'body.json'), delivered.body.replace('wh:recipe', 'wh:recipf'));
    const tampered = await sh(verify, dir, env);
    expect(tampered.stdout).toBe('');
    expect(tampered.code).not.toBe(0);
    writeFileSync(join(dir, 'body.json'), delivered.body);
    const otherSecret = await sh(verify, dir, { ...env, PUSHCAST_WEBHOOK_SECRET: `${SECRET}x` });
    expect(otherSecret.stdout).toBe('');
  });

  it('signs a test request with a fresh timestamp that a receiver verifying as pushcast does accepts', async () => {
    requireTool('openssl', 'openssl');
    requireTool('curl', 'curl');
    const { send } = readmeRecipe();
    writeFileSync(join(dir, 'body.json'), delivered.body);
    const before = receiver.requests.length;
    const sent = await sh(send.replace(README_URL, receiver.url), dir, {
      PUSHCAST_WEBHOOK_SECRET: SECRET,
    });
    expect(sent.code, sent.stderr).toBe(0);
    expect(receiver.requests).toHaveLength(before + 1);
    const test = receiver.requests[before]!;
    expect(test.body).toBe(delivered.body);
    expect(test.signed).toBe(true);
    expect(Math.abs(Number(test.timestamp) - Date.now() / 1000)).toBeLessThan(60);
  });
});
