import WebSocket from 'ws';

/**
 * Opens a WebSocket upgrade that the server must refuse: its HTTP status and body as text.
 * Rejects if the upgrade is accepted (the socket is closed first).
 */
export function refusedUpgrade(
  url: string,
  options: { origin?: string } = {},
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options.origin ? { origin: options.origin } : {});
    ws.on('unexpected-response', (req, res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => {
        req.destroy();
        resolve({ status: res.statusCode ?? 0, text });
      });
    });
    ws.on('open', () => {
      ws.close();
      reject(new Error('the upgrade was accepted'));
    });
    ws.on('error', () => {});
  });
}
