import type { ClientRequest, IncomingHttpHeaders, IncomingMessage } from 'node:http';
import WebSocket from 'ws';

/** A refused upgrade as the client read it. */
export interface UpgradeRefusal {
  status: number;
  text: string;
  headers: IncomingHttpHeaders;
}

/** Reads the HTTP answer of a refused upgrade (`ws`'s 'unexpected-response'), then lets it go. */
export function readRefusal(req: ClientRequest, res: IncomingMessage): Promise<UpgradeRefusal> {
  return new Promise((resolve) => {
    let text = '';
    res.on('data', (chunk: Buffer) => (text += chunk.toString()));
    res.on('end', () => {
      req.destroy();
      resolve({ status: res.statusCode ?? 0, text, headers: res.headers });
    });
  });
}

/**
 * Opens a WebSocket upgrade that the server must refuse: its HTTP status and body as text.
 * Rejects if the upgrade is accepted (the socket is closed first).
 */
export function refusedUpgrade(
  url: string,
  options: { origin?: string } = {},
): Promise<UpgradeRefusal> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options.origin ? { origin: options.origin } : {});
    ws.on('unexpected-response', (req, res) => void readRefusal(req, res).then(resolve));
    ws.on('open', () => {
      ws.close();
      reject(new Error('the upgrade was accepted'));
    });
    ws.on('error', () => {});
  });
}
