import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { openApiDocument } from '../../src/http/openapi.js';
import { startNode, type TestNode } from '../support/nodes.js';

describe('OpenAPI document', () => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startNode();
  });
  afterAll(async () => node?.stop());

  it('matches the committed openapi.json (run `npm run openapi` after an API change)', () => {
    const committed = JSON.parse(readFileSync('openapi.json', 'utf8')) as unknown;
    expect(openApiDocument(configSchema.parse({}).limits)).toEqual(committed);
  });

  it('is served publicly at /api/openapi.json, for the node’s own limits', async () => {
    const res = await fetch(`${node.url}/api/openapi.json`);
    expect(res.status).toBe(200);
    const doc = (await res.json()) as Record<string, any>;
    expect(doc.openapi).toBe('3.1.0');
    expect(doc).toEqual(JSON.parse(readFileSync('openapi.json', 'utf8')));
  });

  it('describes the push API from the validating schemas, every reference resolving', () => {
    const doc = openApiDocument({
      ...configSchema.parse({}).limits,
      maxChannelsPerPush: 7,
    }) as Record<string, any>;
    const push = doc.components.schemas.Push;
    expect(push.required).toEqual(['channel', 'event', 'data']);
    expect(push.properties.channel.anyOf[1].maxItems).toBe(7);
    expect(Object.keys(doc.paths['/api/push'].post.responses).sort()).toEqual(
      ['200', '400', '401', '403', '413', '415', '422', '429', '503'].sort(),
    );
    const refs = JSON.stringify(doc).match(/"\$ref":"[^"]+"/g) ?? [];
    expect(refs.length).toBeGreaterThan(3);
    for (const ref of refs) {
      const path = ref.slice(8, -1).replace(/^#\//, '').split('/');
      let node: any = doc;
      for (const part of path) node = node?.[part];
      expect(node, ref).toBeDefined();
    }
  });
});
