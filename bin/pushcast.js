#!/usr/bin/env node
// The CLI runs from the build (`npm run build`; `npm start` builds first). In a checkout that was
// not built yet, it runs the TypeScript sources through tsx (a development dependency) instead.
import { existsSync } from 'node:fs';

const built = new URL('../dist/cli/index.js', import.meta.url);
if (existsSync(built)) {
  await import(built.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('../src/cli/index.ts', import.meta.url).href);
}
