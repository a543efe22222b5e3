import { DEV_API_KEY } from './development.js';

/** Where the CLI's API commands go and with which key: flags < environment < development default. */
export function cliSettings(
  flags: { url?: string | undefined; key?: string | undefined },
  env: NodeJS.ProcessEnv = process.env,
): { url: string; key: string | undefined } {
  const url = flags.url ?? env.PUSHCAST_URL ?? `http://localhost:${env.PORT ?? '4000'}`;
  const fromList = env.PUSHCAST_API_KEYS?.split(',')[0]?.trim();
  const key =
    flags.key ??
    env.PUSHCAST_API_KEY ??
    (fromList || (env.NODE_ENV === 'production' ? undefined : DEV_API_KEY));
  return { url: url.replace(/\/+$/, ''), key };
}
