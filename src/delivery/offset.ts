import { randomBytes } from 'node:crypto';

/**
 * Offsets are `<epoch>:<n>`: n counts a channel's messages from 1; the epoch names one life of the
 * channel's history, so a position from a history that expired or was lost and started again is
 * never taken for one in the new one. Clients treat offsets as opaque.
 */
export interface ParsedOffset {
  epoch: string;
  n: number;
}

const OFFSET = /^([A-Za-z0-9]{1,32}):(\d{1,15})$/;

/** Parses an offset; undefined for anything malformed (never throws). */
export function parseOffset(value: unknown): ParsedOffset | undefined {
  if (typeof value !== 'string') return undefined;
  const m = OFFSET.exec(value);
  if (!m) return undefined;
  const n = Number(m[2]);
  return Number.isSafeInteger(n) ? { epoch: m[1]!, n } : undefined;
}

/** Formats an offset. */
export function formatOffset(epoch: string, n: number): string {
  return `${epoch}:${n}`;
}

/** A fresh random epoch. */
export function newEpoch(): string {
  return randomBytes(6).toString('hex');
}
