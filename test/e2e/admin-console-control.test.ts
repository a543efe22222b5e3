import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../support/browser.js';
import { until } from '../support/assertions.js';
import { watchEnd } from '../support/control.js';
import { startRedis, type RedisFixture } from '../support/redis.js';
import { connectClient, startNode, token, type TestNode } from '../support/nodes.js';

const ADMIN_KEY = 'admin-console-control-key-0123456789';

/**
 * The admin console's control forms in a real headless Chromium: the page is served by one node,
 * the user it acts on is connected to the other.
 */
describe('admin console: control a user', () => {
  let redis: RedisFixture;
  let a: TestNode;
  let b: TestNode;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    redis = await startRedis();
    const apiKeys = [{ key: ADMIN_KEY, id: 'admin' }];
    a = await startNode({ redisUrl: redis.url, apiKeys });
    b = await startNode({ redisUrl: redis.url, apiKeys });
    browser = await launchChromium();
    page = await browser.newPage();
    await page.goto(`${a.url}/admin`);
    await page.fill('#login-key', ADMIN_KEY);
    await page.click('#login-button');
    await page.waitForSelector('#console:not([hidden])');
  }, 60_000);
  afterAll(async () => {
    await page?.close();
    await browser?.close();
    await a?.stop();
    await b?.stop();
    await redis?.stop();
  });

  const connect = async (sub: string) =>
    connectClient(b.url, { token: await token({ sub, channels: ['console:*'] }) });

  it('unsubscribes a user from a channel on another node', async () => {
    const client = await connect('ivy');
    const end = watchEnd(client.socket);
    try {
      expect(await client.join('console:room')).toMatchObject({ ok: true });
      await page.fill('#unsubscribe-channel', 'console:room');
      await page.fill('#unsubscribe-user', 'ivy');
      await page.click('#unsubscribe-button');
      await expect
        .poll(() => page.textContent('#unsubscribe-result'))
        .toBe('unsubscribed 1 connection(s) of ivy from console:room');
      await until(() => end.lefts.length > 0, 5000, 'left');
      expect(end.lefts).toEqual([{ channel: 'console:room', reason: 'unsubscribed' }]);
      // A refusal shows the server's code.
      await page.fill('#unsubscribe-channel', 'not a channel');
      await page.click('#unsubscribe-button');
      await expect
        .poll(() => page.textContent('#unsubscribe-result'))
        .toMatch(/^422 invalid_request: /);
      expect(await page.getAttribute('#unsubscribe-result', 'class')).toBe('error');
    } finally {
      client.close();
    }
  });

  it('disconnects a user on another node', async () => {
    const client = await connect('zoe');
    const end = watchEnd(client.socket);
    try {
      await page.fill('#disconnect-user', 'zoe');
      await page.click('#disconnect-button');
      await expect
        .poll(() => page.textContent('#disconnect-result'))
        .toBe('disconnected 1 connection(s) of zoe');
      await until(() => end.reason !== undefined, 5000, 'the disconnect');
      expect(end.errors).toMatchObject([{ code: 'disconnected' }]);
      expect(end.reason).toBe('io server disconnect');
    } finally {
      client.close();
    }
  });
});
