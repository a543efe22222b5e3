import type { Config } from '../config/schema.js';

/** The loud warning while the public development secrets are in use, one line each. */
export const DEVELOPMENT_WARNING: readonly string[] = [
  'DEVELOPMENT SECRETS IN USE: anyone can push and join any channel.',
  "The development API key and JWT secret are public (they are in pushcast's source).",
  'Set PUSHCAST_API_KEYS and PUSHCAST_JWT_SECRET (or PUSHCAST_JWT_PUBLIC_KEY, or',
  'PUSHCAST_JWT_JWKS_FILE) before exposing this server.',
];

const RULE = '!'.repeat(78);

/** The first-run help printed when development secrets are in use, framed by the loud warning. */
export function developmentBanner(
  url: string,
  config: Config,
  development: { apiKey?: string; jwtSecret?: string },
): string {
  const key = development.apiKey ?? '<your API key>';
  const warning = ['', RULE, ...DEVELOPMENT_WARNING.map((line) => `!!! ${line}`), RULE];
  const lines = [
    ...warning,
    '',
    `pushcast is running at ${url} (${config.redisUrl ? 'Redis' : config.redisClusterNodes ? 'Redis Cluster' : 'single node, in memory'})`,
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
  lines.push(
    '',
    'These development secrets are refused in production (NODE_ENV=production).',
    ...warning,
    '',
  );
  return lines.join('\n') + '\n';
}
