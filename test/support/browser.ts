import { chromium, type Browser } from 'playwright-core';

/**
 * Debian's Chromium, headless. The flags keep it off the network this machine does not have
 * (background updates, sync) and let it run as root in a container.
 */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
    ],
  });
}
