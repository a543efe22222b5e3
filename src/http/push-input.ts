import type { z } from 'zod';
import type { Config } from '../config/schema.js';
import type { PushRequest } from '../delivery/pipeline.js';
import { PushcastError } from '../errors.js';
import type { ApiSchemas } from './schemas.js';

const REQUIRED = ['channel', 'event', 'data'] as const;

/**
 * Turns a request body into a validated push (422/413 as {@link PushcastError}). `parsed`: the
 * body came from JSON.parse (an HTTP request), so its data is JSON and is not walked again; a value
 * handed over in code (`PushServer.push`) gets the full check.
 */
export function parsePush(
  body: unknown,
  schemas: ApiSchemas,
  limits: Config['limits'],
  { parsed: fromJson = false }: { parsed?: boolean } = {},
): PushRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new PushcastError(
      'invalid_push',
      'The body must be a JSON object with channel, event and data.',
    );
  // Name a missing field plainly (the schema would only say "Invalid input" for data).
  const missing = REQUIRED.filter((k) => !Object.hasOwn(body, k));
  if (missing.length > 0)
    throw new PushcastError('invalid_push', `${missing.join(', ')}: required`, {
      details: {
        field: missing[0],
        issues: missing.map((field) => ({ field, message: 'required' })),
      },
    });
  // Say which limit a too-long channel list broke (the schema's union would hide it).
  const list = (body as { channel?: unknown }).channel;
  if (Array.isArray(list) && list.length > limits.maxChannelsPerPush)
    throw new PushcastError(
      'invalid_push',
      `channel: at most ${limits.maxChannelsPerPush} channels per push (got ${list.length})`,
      { details: { field: 'channel', limit: limits.maxChannelsPerPush, size: list.length } },
    );
  const parsed = (fromJson ? schemas.pushIntake : schemas.push).safeParse(body);
  if (!parsed.success) throw invalid(parsed.error);
  const { channel, event } = parsed.data;
  // Data is taken as sent, never from a copy (one rebuilt by a schema drops keys such as
  // "__proto__": the push would change on the way).
  const data = (body as Record<string, unknown>).data;
  // Duplicates removed, first occurrence kept in place.
  const channels = Array.isArray(channel) ? [...new Set(channel)] : [channel];
  const dataJson = JSON.stringify(data);
  const bytes = Buffer.byteLength(dataJson, 'utf8');
  if (bytes > limits.maxDataBytes)
    throw new PushcastError(
      'payload_too_large',
      `data is ${bytes} bytes serialized; the limit is ${limits.maxDataBytes}.`,
      {
        details: { field: 'data', limit: limits.maxDataBytes, size: bytes },
      },
    );
  return { channels, event, data, dataJson };
}

function invalid(error: z.ZodError): PushcastError {
  const issues = error.issues.map((i) => ({
    field: i.path.map(String).join('.') || '(body)',
    message: i.message,
  }));
  const first = issues[0]!;
  const field = first.field.split('.')[0] ?? first.field;
  return new PushcastError('invalid_push', `${first.field}: ${first.message}`, {
    details: { field, issues },
  });
}
