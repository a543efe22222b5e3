/**
 * A bounded look at a push body before it is parsed: one pass over the bytes, no allocation per
 * value. A body built to hurt (nested thousands deep, megabytes of keys in `data`, a channel list
 * of a million names) is refused in milliseconds, instead of after a parse and a validation walk
 * that hold the event loop (and every other request, `/healthz` included) for seconds, or
 * overflow the stack.
 *
 * Sizes are measured as sent, without insignificant whitespace. The scan does not validate:
 * malformed JSON is left for `JSON.parse` to refuse.
 */

/** How a body is read: one push, or a batch `{ pushes: [push, ...] }`. */
export type ScanShape = 'push' | 'batch';

/** Limits the scan enforces. */
export interface ScanLimits {
  /** Deepest nesting allowed in the whole body. */
  maxDepth: number;
  /** Largest `data` value of one push, in bytes. */
  maxDataBytes: number;
  /** Largest value of any other field of a push (or of the batch object), in bytes. */
  maxFieldBytes: number;
}

/** A field over its limit: where it is, so a batch can cut it out and refuse only its slot. */
export interface OversizeField {
  /** Index of the push in the batch; -1 for the push body itself or the batch object. */
  slot: number;
  key: string;
  /** At least this many bytes (the scan of a single push stops at the limit). */
  size: number;
  limit: number;
  start: number;
  end: number;
}

/** What the scan found. */
export type JsonScan =
  | { ok: true; oversize: OversizeField[] }
  | { ok: false; reason: 'too_deep'; depth: number }
  | { ok: false; reason: 'oversize'; field: OversizeField };

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;

/**
 * Scans `body`. A single push stops at the first field over its limit; a batch records the
 * oversize fields of its slots (so they can be cut out and answered in their slot) and stops for
 * nesting, for a field of the batch object itself, or for a slot's field far over its limit.
 */
export function scanJson(body: Buffer, shape: ScanShape, limits: ScanLimits): JsonScan {
  const oversize: OversizeField[] = [];
  // Per depth (index = depth - 1): whether the container is an object, and the current key.
  const objects: boolean[] = [];
  const keys: string[] = [];
  let depth = 0;
  let slot = -1;
  // The field being measured: the depth of its container, its key, start and running size.
  let fieldDepth = -1;
  let fieldKey = '';
  let fieldStart = 0;
  let size = 0;
  let expectKey = false;
  let i = 0;
  const n = body.length;

  /** Whether the object at the current depth holds push fields (or is the batch object). */
  const measured = (): boolean => {
    if (objects[depth - 1] !== true) return false;
    if (depth === 1) return shape === 'push' || keys[0] !== 'pushes';
    return shape === 'batch' && depth === 3 && keys[0] === 'pushes' && objects[1] === false;
  };

  /** Whether the scan is directly inside the batch's `pushes` array. */
  const inPushes = (): boolean =>
    shape === 'batch' &&
    depth === 2 &&
    objects[0] === true &&
    keys[0] === 'pushes' &&
    objects[1] === false;

  /** Ends the field being measured; returns a refusal for a single push over its limit. */
  const endField = (end: number): JsonScan | undefined => {
    const limit = fieldKey === 'data' ? limits.maxDataBytes : limits.maxFieldBytes;
    const field = fieldDepth;
    fieldDepth = -1;
    if (size <= limit) return undefined;
    const found = {
      slot: field === 1 ? -1 : slot,
      key: fieldKey,
      size,
      limit,
      start: fieldStart,
      end,
    };
    if (shape === 'push' || found.slot === -1)
      return { ok: false, reason: 'oversize', field: found };
    oversize.push(found);
    return undefined;
  };

  while (i < n) {
    const c = body[i]!;
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) {
      i++;
      continue;
    }
    if (c === QUOTE) {
      const start = i;
      // The closing quote: the next one not escaped by an odd run of backslashes.
      let close = body.indexOf(QUOTE, i + 1);
      while (close > 0 && escaped(body, close)) close = body.indexOf(QUOTE, close + 1);
      i = close < 0 ? n : close + 1;
      // Keys inside a measured field are part of its size like any string; only the keys of a
      // push (depth 1, or 3 in a batch) need their names.
      if (fieldDepth >= 0) size += i - start;
      if (expectKey)
        keys[depth - 1] = depth === 1 || depth === 3 ? keyName(body, start, Math.min(i, n)) : '';
      expectKey = false;
    } else {
      if (fieldDepth >= 0) size++;
      switch (c) {
        case OPEN_OBJECT:
        case OPEN_ARRAY:
          objects[depth] = c === OPEN_OBJECT;
          keys[depth] = '';
          depth++;
          if (depth > limits.maxDepth) return { ok: false, reason: 'too_deep', depth };
          expectKey = c === OPEN_OBJECT;
          if (inPushes()) slot = 0;
          break;
        case CLOSE_OBJECT:
        case CLOSE_ARRAY:
          depth--;
          expectKey = false;
          // The container of the measured field closed: the bracket is not part of the value.
          if (fieldDepth >= 0 && depth < fieldDepth) {
            size--;
            const refusal = endField(i);
            if (refusal) return refusal;
          }
          break;
        case COMMA:
          if (fieldDepth >= 0 && depth === fieldDepth) {
            size--;
            const refusal = endField(i);
            if (refusal) return refusal;
          }
          expectKey = objects[depth - 1] === true;
          // The next element of the batch's `pushes` array: the next slot.
          if (inPushes()) slot++;
          break;
        case COLON:
          if (fieldDepth < 0 && measured()) {
            fieldDepth = depth;
            fieldKey = keys[depth - 1] ?? '';
            fieldStart = i + 1;
            size = 0;
          }
          break;
      }
      i++;
    }
    // A single push (or the batch object) need not be read past a field already over its limit,
    // nor a batch past a slot's field four times over: that request is refused as a whole.
    if (fieldDepth >= 0) {
      const limit = fieldKey === 'data' ? limits.maxDataBytes : limits.maxFieldBytes;
      const whole = shape === 'push' || fieldDepth === 1;
      if (size > (whole ? limit : FAR_OVER * limit))
        return {
          ok: false,
          reason: 'oversize',
          field: {
            slot: fieldDepth === 1 ? -1 : slot,
            key: fieldKey,
            size,
            limit,
            start: fieldStart,
            end: i,
          },
        };
    }
  }
  return { ok: true, oversize };
}

/**
 * The body with every oversize field's value replaced by `null`, so the rest of a batch can be
 * parsed cheaply; the slots that lost a field are answered 413 from the scan.
 */
export function withoutOversize(body: Buffer, fields: readonly OversizeField[]): Buffer {
  if (fields.length === 0) return body;
  const parts: Buffer[] = [];
  let at = 0;
  for (const f of fields) {
    parts.push(body.subarray(at, f.start), NULL);
    at = f.end;
  }
  parts.push(body.subarray(at));
  return Buffer.concat(parts);
}

const NULL = Buffer.from('null');

/** A batch slot's field this many times over its limit refuses the whole batch at once. */
const FAR_OVER = 4;

/** Whether the byte at `at` is preceded by an odd number of backslashes. */
function escaped(body: Buffer, at: number): boolean {
  let k = at - 1;
  while (k >= 0 && body[k] === BACKSLASH) k--;
  return (at - 1 - k) % 2 === 1;
}

/** The name a raw JSON string token (quotes included) stands for; long keys are cut short. */
function keyName(body: Buffer, start: number, end: number): string {
  const raw = body.subarray(start + 1, Math.max(start + 1, end - 1));
  if (raw.length > 64) return '(long key)';
  if (!raw.includes(BACKSLASH)) return raw.toString('utf8');
  // An escaped key ("d\u0061ta") means the same to JSON.parse: decode it the same way.
  try {
    return JSON.parse(body.subarray(start, end).toString('utf8')) as string;
  } catch {
    return '(bad key)';
  }
}
