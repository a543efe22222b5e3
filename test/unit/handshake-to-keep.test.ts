import { describe, expect, it } from 'vitest';
import type { HandshakeInfo, Hooks } from '../../src/auth/hooks.js';
import { handshakeToKeep } from '../../src/realtime/socket-auth.js';

/**
 * What of its handshake a connection (direct Socket.IO or Phoenix) keeps once authenticated
 * (src/realtime/socket-auth.ts): only an `authenticateSocket` hook reads more than a refresh's own
 * token, so without one nothing is kept, and with one neither the token nor the WebSocket
 * handshake's own headers.
 */
describe('handshakeToKeep', () => {
  const handshake: HandshakeInfo = {
    auth: { token: 'eyJ.secret.jwt', device: 'phone' },
    headers: {
      host: 'push.example',
      'x-app': 'demo',
      connection: 'Upgrade',
      upgrade: 'websocket',
      'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
      'sec-websocket-version': '13',
    },
    query: { vsn: '2.0.0', room: 'lobby' },
    address: '10.0.0.7',
  };
  const withHook: Hooks = { authenticateSocket: () => ({ userId: 'u1' }) };

  it('keeps nothing without an authenticateSocket hook: no token, no headers, one shared value', () => {
    const kept = handshakeToKeep(handshake, {});
    expect(kept).toEqual({ auth: {}, headers: {}, query: {}, address: '' });
    expect(handshakeToKeep({ ...handshake, address: '10.0.0.8' }, {})).toBe(kept);
    expect(Object.isFrozen(kept)).toBe(true);
  });

  it('with the hook keeps the rest of auth, query and address, and the headers but the upgrade ones', () => {
    const kept = handshakeToKeep(handshake, withHook);
    expect(kept).toEqual({
      auth: { device: 'phone' },
      headers: { host: 'push.example', 'x-app': 'demo' },
      query: { vsn: '2.0.0', room: 'lobby' },
      address: '10.0.0.7',
    });
    expect(JSON.stringify(kept)).not.toContain('secret');
  });
});
