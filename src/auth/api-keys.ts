import { createHash, timingSafeEqual } from 'node:crypto';
import type { ApiKeyConfig } from '../config/schema.js';

/** Who called the API: the key's id (never the secret), its scopes and channel limits. */
export interface ApiPrincipal {
  keyId: string;
  scopes: readonly string[];
  /** Channel patterns this caller may push to; undefined = all. */
  channels?: readonly string[];
}

interface StoredKey {
  digest: Buffer;
  principal: ApiPrincipal;
}

/** A key without `scopes` that may reach every channel holds all of them. */
const ALL_SCOPES = ['push', 'read', 'admin'] as const;
/**
 * A channel-limited key without `scopes` holds these: a key made for some channels must never
 * reach the cluster-wide `admin` routes unless it names that scope itself.
 */
const CHANNEL_KEY_SCOPES = ['push', 'read'] as const;

/** The scopes a configured key holds: the ones it names, else a default that depends on its reach. */
export function scopesOf(key: Pick<ApiKeyConfig, 'scopes' | 'channels'>): readonly string[] {
  if (key.scopes) return key.scopes;
  return key.channels ? CHANNEL_KEY_SCOPES : ALL_SCOPES;
}

/**
 * The configured API keys. Lookup hashes the presented key and compares it with every stored
 * digest in constant time, without stopping at a match, so timing tells nothing about which key
 * or how much of one matched.
 */
export class ApiKeyring {
  private readonly keys: StoredKey[];

  constructor(keys: readonly ApiKeyConfig[]) {
    this.keys = keys.map((k, i) => ({
      digest: digest(k.key),
      principal: {
        keyId: k.id ?? `key-${i + 1}`,
        scopes: scopesOf(k),
        ...(k.channels ? { channels: k.channels } : {}),
      },
    }));
  }

  /** The principal for a presented key, or undefined. */
  verify(presented: string): ApiPrincipal | undefined {
    const candidate = digest(presented);
    let found: ApiPrincipal | undefined;
    for (const k of this.keys) {
      if (timingSafeEqual(candidate, k.digest) && found === undefined) found = k.principal;
    }
    return found;
  }
}

function digest(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

/** The key from an `Authorization: Bearer <key>` header, or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  return match?.[1];
}
