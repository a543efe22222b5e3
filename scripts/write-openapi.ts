// Writes openapi.json (the API document for the default limits). Run after changing an API schema:
//   npm run openapi
import { writeFileSync } from 'node:fs';
import { configSchema } from '../src/config/schema.js';
import { openApiDocument } from '../src/http/openapi.js';

const doc = openApiDocument(configSchema.parse({}).limits);
writeFileSync(new URL('../openapi.json', import.meta.url), `${JSON.stringify(doc, null, 2)}\n`);
console.log('wrote openapi.json');
