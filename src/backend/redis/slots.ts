/**
 * Redis Cluster hash slots: CRC16 (XMODEM) of the key, or of its hash tag (the part between the
 * first `{` and the next `}`, when not empty), modulo 16384. A channel's keys (`pc:{channel}:m`)
 * and its shard channel (`socket.io#/#{channel}#`) share the tag `{channel}`, so one slot.
 */
export const SLOTS = 16384;

const TABLE = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit++)
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[i] = crc;
  }
  return table;
})();

function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ byte) & 0xff]!;
  return crc;
}

/** The slot of a key (or shard channel), honouring its hash tag. */
export function slotOf(key: string): number {
  const open = key.indexOf('{');
  if (open !== -1) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) key = key.slice(open + 1, close);
  }
  return crc16(Buffer.from(key, 'utf8')) % SLOTS;
}

/** The slot of a channel's keys and shard channel (its `{channel}` hash tag). */
export function slotOfChannel(channel: string): number {
  return crc16(Buffer.from(channel, 'utf8')) % SLOTS;
}
