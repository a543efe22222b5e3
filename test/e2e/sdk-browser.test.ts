import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build } from 'esbuild';
import type { Browser } from 'playwright-core';
import { launchChromium } from '../support/browser.js';
import { postJson, startNode, token, type TestNode } from '../support/nodes.js';

/**
 * The SDK's browser bundle (the same esbuild command as `npm run build:client`) loaded by a page
 * from another origin, in real headless Chromium: connect, subscribe, receive, refresh-safe.
 */
describe('client SDK bundle in a browser page', () => {
  let node: TestNode;
  let site: Server;
  let siteUrl: string;
  let browser: Browser;

  beforeAll(async () => {
    node = await startNode();
    const dir = mkdtempSync(join(tmpdir(), 'pushcast-sdk-'));
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(pkg.scripts['build:client']).toContain('--format=esm --platform=browser');
    await build({
      entryPoints: ['src/client/index.ts'],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2020',
      minify: true,
      outfile: join(dir, 'pushcast-client.js'),
    });
    const bundle = readFileSync(join(dir, 'pushcast-client.js'));
    site = createServer((req, res) => {
      if (req.url === '/pushcast-client.js') {
        res.writeHead(200, { 'content-type': 'text/javascript' }).end(bundle);
        return;
      }
      res
        .writeHead(200, { 'content-type': 'text/html' })
        .end('<!doctype html><title>app</title><body>app</body>');
    });
    await new Promise<void>((r) => site.listen(0, '127.0.0.1', () => r()));
    siteUrl = `http://127.0.0.1:${(site.address() as { port: number }).port}`;
    browser = await launchChromium();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    site?.close();
    await node?.stop();
  });

  it('connects from another origin, subscribes and receives pushes in order', async () => {
    const page = await browser.newPage();
    try {
      await page.goto(siteUrl);
      const jwt = await token({ sub: 'web', channels: ['web:*'] });
      // As a page's own module script (a string: vitest must not rewrite the dynamic import).
      await page.addScriptTag({
        type: 'module',
        content: `
          import { createClient } from '/pushcast-client.js';
          window.got = [];
          const client = createClient(${JSON.stringify(node.url)}, { getToken: () => ${JSON.stringify(jwt)} });
          client.subscribe('web:1', { onMessage: (m) => window.got.push(m.data), onJoin: () => (window.joined = true) });
        `,
      });
      await page.waitForFunction(() => (window as unknown as { joined?: boolean }).joined === true);
      for (let i = 0; i < 5; i++)
        expect(
          (await postJson(`${node.url}/api/push`, { channel: 'web:1', event: 'e', data: i }))
            .status,
        ).toBe(200);
      await page.waitForFunction(() => (window as unknown as { got: unknown[] }).got.length === 5);
      expect(await page.evaluate(() => (window as unknown as { got: unknown[] }).got)).toEqual([
        0, 1, 2, 3, 4,
      ]);
    } finally {
      await page.close();
    }
  });
});
