import { SignJWT } from 'jose';
import { loadConfig } from '../config/load.js';

/** `pushcast token`: mints a socket token with the configured HS* secret (for development). */
export async function mintToken(args: {
  sub: string;
  channels: string[];
  ttlS: number;
}): Promise<string> {
  const { config } = loadConfig();
  const secret = config.jwt.secret;
  if (!secret)
    throw new Error(
      'pushcast token needs a JWT secret (PUSHCAST_JWT_SECRET); public-key setups mint tokens elsewhere',
    );
  const alg = config.jwt.algorithms?.[0] ?? 'HS256';
  const jwt = new SignJWT({ channels: args.channels })
    .setProtectedHeader({ alg })
    .setSubject(args.sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + args.ttlS);
  // A server that checks `iss` / `aud` would refuse a token without them.
  if (config.jwt.issuer) jwt.setIssuer(config.jwt.issuer);
  if (config.jwt.audience) jwt.setAudience(config.jwt.audience);
  return jwt.sign(new TextEncoder().encode(secret));
}
