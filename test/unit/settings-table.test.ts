import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { envMap } from '../../src/config/load.js';
import { configSchema } from '../../src/config/schema.js';

// Kubernetes passes settings as environment variables, so every scalar setting has one, and the
// README's settings table lists every one of them: this test holds the three together.

/** Setting paths of the schema whose values are scalars or lists of scalars. */
function scalarPaths(schema: z.ZodType, prefix = ''): string[] {
  let node = schema as unknown as { _zod: { def: Record<string, unknown> } };
  // Peel optional / default / prefault wrappers.
  while (node._zod.def.innerType) node = node._zod.def.innerType as typeof node;
  const def = node._zod.def as {
    type: string;
    shape?: Record<string, z.ZodType>;
    element?: z.ZodType;
  };
  if (def.type === 'object' && def.shape)
    return Object.entries(def.shape).flatMap(([k, v]) =>
      scalarPaths(v, prefix ? `${prefix}.${k}` : k),
    );
  if (def.type === 'array') {
    const element = def.element as unknown as { _zod: { def: { type: string } } };
    // Lists of objects (API keys with limits, history overrides) are config-file only.
    return element._zod.def.type === 'object' ? [] : [prefix];
  }
  return [prefix];
}

const readmeRows = (): Array<{ vars: string[]; settings: string[] }> => {
  const readme = readFileSync('README.md', 'utf8');
  // The settings table: from its header row to the first line that is not a table row.
  const start = readme.indexOf('| variable | setting | default | meaning |');
  expect(start).toBeGreaterThan(0);
  const lines = readme.slice(start).split('\n');
  const end = lines.findIndex((line) => !line.startsWith('|'));
  return lines.slice(2, end).map((line) => {
    const [vars = '', settings = ''] = line.split('|').slice(1, 3);
    const names = (cell: string) => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
    return { vars: names(vars), settings: names(settings) };
  });
};

describe('settings: schema, environment and README table agree', () => {
  it('every scalar setting can be set from the environment', () => {
    const fromEnv = new Set(envMap.map(([, path]) => path));
    const missing = scalarPaths(configSchema).filter((p) => !fromEnv.has(p));
    expect(missing).toEqual([]);
  });

  it('every environment variable is a setting of the schema', () => {
    const paths = new Set(scalarPaths(configSchema));
    for (const [name, path] of envMap) expect(paths.has(path), `${name} -> ${path}`).toBe(true);
  });

  it('the README table lists every environment variable with its setting, and nothing else', () => {
    const rows = readmeRows();
    const listed = new Map<string, string>();
    for (const row of rows)
      row.vars.forEach((v, i) => listed.set(v, row.settings[i] ?? row.settings[0] ?? ''));
    const expected = new Map(envMap.map(([name, path]) => [name, path]));
    expect([...listed.keys()].sort()).toEqual([...expected.keys(), 'PUSHCAST_API_KEYS'].sort());
    for (const [name, path] of expected) expect(listed.get(name), name).toBe(path);
  });
});
