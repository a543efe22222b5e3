import { mkdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { launchChromium } from '../support/browser.js';
import { startRedis, type RedisFixture } from '../support/redis.js';
import { connectClient, startNode, token, type TestNode } from '../support/nodes.js';

const ADMIN_KEY = 'admin-console-key-0123456789';
const READ_KEY = 'read-only-key-0123456789abcd';

/** The admin console in a real headless Chromium (Debian package), against two real nodes. */
describe('admin console in Chromium', () => {
  let redis: RedisFixture;
  let a: TestNode;
  let b: TestNode;
  let browser: Browser;

  beforeAll(async () => {
    redis = await startRedis();
    const apiKeys = [
      { key: ADMIN_KEY, id: 'admin' },
      { key: READ_KEY, id: 'reader', scopes: ['read' as const] },
    ];
    a = await startNode({ redisUrl: redis.url, apiKeys });
    b = await startNode({ redisUrl: redis.url, apiKeys });
    browser = await launchChromium();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await a?.stop();
    await b?.stop();
    await redis?.stop();
  });

  it('refuses a key without the admin scope', async () => {
    const page = await browser.newPage();
    try {
      await page.goto(`${a.url}/admin`);
      await page.fill('#login-key', READ_KEY);
      await page.click('#login-button');
      await expect.poll(() => page.textContent('#login-error')).toContain('admin scope');
      expect(await page.isVisible('#console')).toBe(false);
    } finally {
      await page.close();
    }
  });

  it('logs in, lists the nodes, publishes, and shows the message in the channel watcher', async () => {
    const listener = await connectClient(b.url, {
      token: await token({ sub: 'u', channels: ['admin:*'] }),
    });
    await listener.join('admin:test');
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    try {
      await page.goto(`${a.url}/admin`);
      await page.fill('#login-key', ADMIN_KEY);
      await page.click('#login-button');
      await page.waitForSelector('#console:not([hidden])');
      // Both nodes, whichever one served the page.
      await expect.poll(() => page.locator('#nodes tbody tr').count(), { timeout: 10_000 }).toBe(2);
      const rows = await page
        .locator('#nodes tbody tr')
        .evaluateAll((trs) => trs.map((tr) => (tr as HTMLElement).dataset.node));
      expect(rows.sort()).toEqual([a.server.node, b.server.node].sort());

      await page.fill('#watch-channel', 'admin:test');
      await page.click('#watch-button');
      await page.waitForSelector('#watch-status[data-ready="admin:test"]');

      await page.fill('#publish-channel', 'admin:test');
      await page.fill('#publish-event', 'greeting');
      await page.fill('#publish-data', '{"text":"hello from chromium"}');
      await page.click('#publish-button');
      await expect.poll(() => page.textContent('#publish-result')).toMatch(/^pushed /);
      await expect.poll(() => page.locator('#watch-log li').count(), { timeout: 10_000 }).toBe(1);
      expect(await page.textContent('#watch-log li')).toContain('greeting');
      expect(await page.textContent('#watch-log li')).toContain('hello from chromium');
      // The push really went out to subscribers on the other node too.
      const [m] = await listener.waitFor(1);
      expect(m).toMatchObject({ event: 'greeting', data: { text: 'hello from chromium' } });

      // Charts fill in as stats are polled (requested vs delivered per node).
      await page.waitForTimeout(2500);
      expect(await page.textContent('#rates-legend')).toContain(a.server.node);
      mkdirSync('test-artifacts', { recursive: true });
      await page.screenshot({ path: 'test-artifacts/admin-console.png', fullPage: true });
    } finally {
      await page.close();
      listener.close();
    }
  }, 60_000);
});
