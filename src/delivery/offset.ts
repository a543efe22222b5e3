import { randomUUID } from 'node:crypto';

/**
 * Offsets are `<epoch>:<n>`: n counts a channel's messages from 1; the epoch names one life of the
 * channel's history, so a position from a history that expired or was lost and started again is
 * never taken for one in the new one. Clients treat offsets as opaque.
 */
export interface ParsedOffset {
  epoch: string;
  /**
   * The count. Digits past Number.MAX_SAFE_INTEGER parse as Infinity: past every position a
   * history reaches, so such an offset is "not from this history" (never recovered from, history
   * answers `complete: false`), as one past the channel's current position is.
   */
  n: number;
}

// Digits of any length up to the 100 characters a `since` may have; the value decides the rest.
const OFFSET = /^([A-Za-z0-9]{1,32}):(\d{1,100})$/;

/** Parses an offset; undefined for anything malformed (never throws). */
export function parseOffset(value: unknown): ParsedOffset | undefined {
  if (typeof value !== 'string') return undefined;
  const m = OFFSET.exec(value);
  if (!m) return undefined;
  const n = Number(m[2]);
  return { epoch: m[1]!, n: Number.isSafeInteger(n) ? n : Number.POSITIVE_INFINITY };
}

/** Formats an offset. */
export function formatOffset(epoch: string, n: number): string {
  return `${epoch}:${n}`;
}

/**
 * A fresh random epoch: 12 hex digits (48 random bits). Taken from a v4 UUID, whose first 12 hex
 * digits are all random, because Node draws those from a pool: `randomBytes(6)` asks OpenSSL on
 * every call (about 8 us; a join to a new channel makes one).
 */
export function newEpoch(): string {
  const uuid = randomUUID();
  return uuid.slice(0, 8) + uuid.slice(9, 13);
}
