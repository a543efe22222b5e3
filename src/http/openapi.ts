import { z } from 'zod';
import type { Config } from '../config/schema.js';
import { VERSION } from '../version.js';
import { channelsQuerySchema } from './cluster-routes.js';
import { historyQuerySchema } from './channel-routes.js';
import {
  disconnectResultSchema,
  unsubscribeBodySchema,
  unsubscribeResultSchema,
  userIdSchema,
} from './control-routes.js';
import { apiSchemas } from './schemas.js';

type Json = Record<string, unknown>;

/**
 * The OpenAPI 3.1 document of the HTTP API, generated from the zod schemas that validate the
 * requests (so the document and the validation cannot drift apart). `openapi.json` at the repo
 * root is this document for the default limits; a test regenerates and compares it.
 */
export function openApiDocument(limits: Config['limits']): Json {
  const s = apiSchemas(limits);
  const registry = z.registry<{ id: string }>();
  registry.add(s.push, { id: 'Push' });
  registry.add(s.pushResponse, { id: 'PushResult' });
  registry.add(z.object({ pushes: z.array(s.push).min(1).max(limits.maxBatch) }), {
    id: 'PushBatch',
  });
  registry.add(s.batchResponse, { id: 'PushBatchResult' });
  registry.add(s.error, { id: 'Error' });
  registry.add(unsubscribeBodySchema, { id: 'Unsubscribe' });
  registry.add(unsubscribeResultSchema, { id: 'UnsubscribeResult' });
  registry.add(disconnectResultSchema, { id: 'DisconnectResult' });
  const generated = z.toJSONSchema(registry, { uri: (id) => `#/components/schemas/${id}` }) as {
    schemas: Record<string, Json>;
  };
  const schemas: Record<string, Json> = {};
  for (const [id, schema] of Object.entries(generated.schemas)) {
    if (id === '__shared') continue;
    delete schema.$schema;
    delete schema.$id;
    schemas[id] = anyJsonForShared(schema) as Json;
  }

  const ref = (id: string): Json => ({ $ref: `#/components/schemas/${id}` });
  const json = (schema: Json): Json => ({ content: { 'application/json': { schema } } });
  const error = (description: string): Json => ({ description, ...json(ref('Error')) });
  const errors = (...codes: number[]): Json =>
    Object.fromEntries(codes.map((c) => [String(c), error(ERROR_TEXT[c] ?? 'error')]));
  const channelParam = {
    name: 'channel',
    in: 'path',
    required: true,
    schema: { type: 'string', pattern: '^[A-Za-z0-9_\\-:.@=]{1,200}$' },
  };
  const queryParams = (schema: z.ZodObject): Json[] => {
    const js = z.toJSONSchema(schema, { io: 'input' }) as {
      properties: Record<string, Json>;
      required?: string[];
    };
    return Object.entries(js.properties).map(([name, p]) => ({
      name,
      in: 'query',
      required: js.required?.includes(name) ?? false,
      schema: p,
    }));
  };
  const userIdParam: Json = { ...z.toJSONSchema(userIdSchema, { io: 'input' }) };
  delete userIdParam.$schema;
  const idempotencyKey = {
    name: 'Idempotency-Key',
    in: 'header',
    required: false,
    description:
      'Same key with the same API key within the idempotency window: the first answer again, nothing pushed.',
    schema: { type: 'string', pattern: '^[\\x21-\\x7e]{1,255}$' },
  };

  return {
    openapi: '3.1.0',
    info: {
      title: 'pushcast HTTP API',
      version: VERSION,
      description:
        'Publish pushes to Socket.IO channels; read channel history, occupancy and cluster stats; disconnect users and unsubscribe them from channels.',
    },
    security: [{ apiKey: [] }],
    paths: {
      '/api/push': {
        post: {
          operationId: 'push',
          summary: 'Push to one or more channels',
          parameters: [idempotencyKey],
          requestBody: { required: true, ...json(ref('Push')) },
          responses: {
            '200': {
              description: 'Recorded in history and handed to the cluster bus',
              ...json(ref('PushResult')),
            },
            ...errors(400, 401, 403, 413, 415, 422, 429, 503),
          },
        },
      },
      '/api/push/batch': {
        post: {
          operationId: 'pushBatch',
          summary: `Up to ${limits.maxBatch} pushes; one result per push, in order`,
          parameters: [idempotencyKey],
          requestBody: { required: true, ...json(ref('PushBatch')) },
          responses: {
            '200': { description: 'One result per push', ...json(ref('PushBatchResult')) },
            ...errors(400, 401, 403, 413, 415, 422, 429, 503),
          },
        },
      },
      '/api/channels': {
        get: {
          operationId: 'listChannels',
          summary: 'Occupied channels across the cluster, with subscriber counts (paginated)',
          parameters: queryParams(channelsQuerySchema),
          responses: {
            '200': {
              description: 'A page of channels; `next` is the cursor of the next page',
              ...json({
                type: 'object',
                properties: {
                  channels: {
                    type: 'array',
                    items: {
                      type: 'object',
                      properties: { channel: { type: 'string' }, subscribers: { type: 'integer' } },
                    },
                  },
                  next: { type: 'string' },
                },
                required: ['channels'],
              }),
            },
            ...errors(401, 403, 422, 503),
          },
        },
      },
      '/api/channels/{channel}': {
        get: {
          operationId: 'getChannel',
          summary: 'Subscribers of a channel across the cluster',
          parameters: [channelParam],
          responses: {
            '200': {
              description: 'The channel',
              ...json({
                type: 'object',
                properties: { channel: { type: 'string' }, subscribers: { type: 'integer' } },
                required: ['channel', 'subscribers'],
              }),
            },
            ...errors(401, 403, 422, 503),
          },
        },
      },
      '/api/channels/{channel}/history': {
        get: {
          operationId: 'getHistory',
          summary: 'Stored messages, oldest first',
          parameters: [channelParam, ...queryParams(historyQuerySchema)],
          responses: {
            '200': {
              description: '`complete: false` when history no longer reaches back to `since`',
              ...json({
                type: 'object',
                properties: {
                  channel: { type: 'string' },
                  messages: { type: 'array', items: MESSAGE },
                  offset: { type: 'string' },
                  complete: { type: 'boolean' },
                },
                required: ['channel', 'messages', 'complete'],
              }),
            },
            ...errors(401, 403, 422, 503),
          },
        },
      },
      '/api/channels/{channel}/presence': {
        get: {
          operationId: 'getPresence',
          summary: 'Users connected to a channel across the cluster',
          parameters: [channelParam],
          responses: {
            '200': {
              description:
                'Users by id (from the token `sub` or the hooks), with connection counts',
              ...json({
                type: 'object',
                properties: {
                  channel: { type: 'string' },
                  count: { type: 'integer' },
                  users: {
                    type: 'array',
                    items: {
                      type: 'object',
                      properties: { userId: { type: 'string' }, connections: { type: 'integer' } },
                    },
                  },
                },
              }),
            },
            ...errors(401, 403, 422, 503),
          },
        },
      },
      '/api/stats': {
        get: {
          operationId: 'getStats',
          summary: 'Every live node: id, version, uptime, state, sockets, channels, push rates',
          responses: {
            '200': { description: 'Nodes and totals', ...json({ type: 'object' }) },
            ...errors(401, 403, 503),
          },
        },
      },
      '/api/users/{userId}/disconnect': {
        post: {
          operationId: 'disconnectUser',
          summary:
            'Close every connection of a user on every node; clients are told why and do not reconnect by themselves',
          description:
            'Scope `control` (or `admin`), a key without channel limits. Idempotent: a 503 (a node did not answer in time) may have closed some connections; retry.',
          parameters: [
            {
              name: 'userId',
              in: 'path',
              required: true,
              schema: userIdParam,
            },
          ],
          responses: {
            '200': {
              description: 'Connections closed, cluster-wide',
              ...json(ref('DisconnectResult')),
            },
            ...errors(401, 403, 422, 503),
          },
        },
      },
      '/api/channels/{channel}/unsubscribe': {
        post: {
          operationId: 'unsubscribeUser',
          summary:
            'Take a user out of a channel on every node; clients get `left` with reason `unsubscribed`',
          description:
            'Scope `control` (or `admin`); a channel-limited key only on its channels. Idempotent: a 503 (a node did not answer in time) may have reached some connections; retry.',
          parameters: [channelParam],
          requestBody: { required: true, ...json(ref('Unsubscribe')) },
          responses: {
            '200': {
              description: 'Connections of the user taken out of the channel, cluster-wide',
              ...json(ref('UnsubscribeResult')),
            },
            ...errors(400, 401, 403, 413, 415, 422, 503),
          },
        },
      },
      '/api/openapi.json': {
        get: {
          operationId: 'getOpenApi',
          summary: 'This document',
          security: [],
          responses: { '200': { description: 'OpenAPI 3.1' } },
        },
      },
      '/healthz': {
        get: {
          operationId: 'health',
          summary: 'Liveness',
          security: [],
          responses: { '200': { description: 'Serving' } },
        },
      },
      '/readyz': {
        get: {
          operationId: 'ready',
          summary: 'Readiness: bus connected and not draining',
          security: [],
          responses: { '200': { description: 'Ready' }, '503': { description: 'Not ready' } },
        },
      },
      '/metrics': {
        get: {
          operationId: 'metrics',
          summary: 'Prometheus metrics',
          security: [],
          responses: { '200': { description: 'Prometheus text format' } },
        },
      },
    },
    components: {
      schemas,
      securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'An API key' } },
    },
  };
}

const MESSAGE = {
  type: 'object',
  properties: {
    channel: { type: 'string' },
    event: { type: 'string' },
    data: {},
    id: { type: 'string' },
    offset: { type: 'string' },
    ts: { type: 'integer' },
  },
  required: ['channel', 'event', 'data', 'id', 'ts'],
};

const ERROR_TEXT: Record<number, string> = {
  400: 'invalid_json',
  401: 'unauthorized',
  403: 'forbidden: the key lacks the scope, or its channel patterns do not cover the channel',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  422: 'invalid_push / invalid_request / idempotency_mismatch (key reused for another request)',
  429: 'rate_limited (with Retry-After)',
  503: 'unavailable (with Retry-After): draining, overloaded or Redis away; nothing was pushed (control routes: a node did not answer in time, retry)',
};

/** zod writes "any JSON value" as a recursive shared definition; in the document it is `{}`. */
function anyJsonForShared(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(anyJsonForShared);
  if (node === null || typeof node !== 'object') return node;
  const obj = node as Json;
  if (typeof obj.$ref === 'string' && obj.$ref.includes('__shared')) {
    return Object.fromEntries(Object.entries(obj).filter(([k]) => k !== '$ref'));
  }
  return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, anyJsonForShared(v)]));
}
