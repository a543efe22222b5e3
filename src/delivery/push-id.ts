import { randomBytes } from 'node:crypto';

// Crockford base32: sorts the same as text and as numbers, no ambiguous letters.
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

function encode(value: number, length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) {
    out = ALPHABET[value % 32]! + out;
    value = Math.floor(value / 32);
  }
  return out;
}

/**
 * Push ids: 26 characters, `time(10) node(8) sequence(8)`. They sort by creation time (ms), are
 * strictly increasing within one node even within one millisecond or if the clock steps back, and
 * are unique across nodes through the 40 random bits each node draws at start.
 */
export class PushIdGenerator {
  private readonly node: string;
  private lastMs = 0;
  private seq = 0;

  constructor(nodeBits: Buffer = randomBytes(5)) {
    this.node = encode(nodeBits.readUIntBE(0, 5), 8);
  }

  /** The next id, and the time it carries. */
  next(now: number = Date.now()): { id: string; ms: number } {
    if (now > this.lastMs) {
      this.lastMs = now;
      this.seq = 0;
    } else {
      // Same millisecond, or the clock went back: keep the last time and count on.
      this.seq += 1;
      if (this.seq >= 2 ** 40) {
        this.lastMs += 1;
        this.seq = 0;
      }
    }
    return { id: encode(this.lastMs, 10) + this.node + encode(this.seq, 8), ms: this.lastMs };
  }
}
