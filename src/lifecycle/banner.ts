import type { Config } from '../config/schema.js';

/** The first-run help printed when development secrets are in use. */
export function developmentBanner(
  url: string,
  config: Config,
  development: { apiKey?: string; jwtSecret?: string },
): string {
  const key = development.apiKey ?? '<your API key>';
  const lines = [
    '',
    `pushcast is running at ${url} (single node, in memory${config.redisUrl ? ', Redis' : ''})`,
    '',
  ];
  if (development.apiKey) lines.push(`Development API key: ${key}`);
  lines.push(
    'Push with curl:',
    `  curl -X POST ${url}/api/push -H 'Authorization: Bearer ${key}' -H 'Content-Type: application/json' -d '{"channel":"user:42","event":"hello","data":{"text":"hi"}}'`,
  );
  if (development.jwtSecret)
    lines.push(
      'Mint a development token (signed with the development JWT secret):',
      `  npm run token -- --sub 42 --channels 'user:42'`,
      'Subscribe from Node or a browser:',
      `  io('${url}', { auth: { token } }).emit('join', { channel: 'user:42' }, console.log)`,
    );
  lines.push('These development secrets are refused in production (NODE_ENV=production).', '');
  return lines.join('\n') + '\n';
}
