import { readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';

/** A Kubernetes object as rendered. */
export type Manifest = Record<string, unknown> & {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
};

interface Kustomization {
  namespace?: string;
  resources?: string[];
  labels?: Array<{ pairs: Record<string, string> }>;
  images?: Array<{ name: string; newName?: string; newTag?: string }>;
  patches?: Array<{ target: { kind: string; name: string }; patch: string }>;
}

type JsonPatchOp = { op: 'add' | 'replace' | 'remove'; path: string; value?: unknown };

/**
 * Renders a kustomization the way `kustomize build` does for the features pushcast's manifests
 * use (resources, namespace, labels, images, inline JSON6902 patches), so tests run offline
 * without kubectl. An unsupported field fails loudly instead of rendering something else.
 */
export function renderKustomization(dir: string): Manifest[] {
  const k = parse(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')) as Kustomization &
    Record<string, unknown>;
  const known = new Set([
    'apiVersion',
    'kind',
    'namespace',
    'resources',
    'labels',
    'images',
    'patches',
  ]);
  for (const key of Object.keys(k))
    if (!known.has(key)) throw new Error(`kustomize field not supported here: ${key}`);
  const docs: Manifest[] = [];
  for (const r of k.resources ?? []) {
    const path = resolve(dir, r);
    if (statSync(path).isDirectory()) docs.push(...renderKustomization(path));
    else
      for (const d of parseAllDocuments(readFileSync(path, 'utf8'))) {
        const value = d.toJSON() as Manifest | null;
        if (value) docs.push(value);
      }
  }
  for (const l of k.labels ?? [])
    for (const d of docs) d.metadata.labels = { ...(d.metadata.labels ?? {}), ...l.pairs };
  if (k.namespace) for (const d of docs) d.metadata.namespace = k.namespace;
  for (const image of k.images ?? []) for (const d of docs) retag(d, image);
  for (const p of k.patches ?? []) {
    const targets = docs.filter(
      (d) => d.kind === p.target.kind && d.metadata.name === p.target.name,
    );
    if (targets.length === 0)
      throw new Error(`patch target not found: ${p.target.kind}/${p.target.name}`);
    const ops = parse(p.patch) as JsonPatchOp[];
    for (const t of targets) for (const op of ops) applyOp(t, op);
  }
  return docs;
}

function retag(doc: Manifest, image: { name: string; newName?: string; newTag?: string }): void {
  const spec = (
    doc.spec as { template?: { spec?: { containers?: Array<{ image: string }> } } } | undefined
  )?.template?.spec;
  for (const c of spec?.containers ?? []) {
    const at = c.image.lastIndexOf(':');
    const [name, tag] =
      at > c.image.lastIndexOf('/')
        ? [c.image.slice(0, at), c.image.slice(at + 1)]
        : [c.image, 'latest'];
    if (name === image.name) c.image = `${image.newName ?? name}:${image.newTag ?? tag}`;
  }
}

function applyOp(doc: Record<string, unknown>, op: JsonPatchOp): void {
  const parts = op.path
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  const last = parts.pop();
  if (last === undefined) throw new Error(`bad patch path ${op.path}`);
  let node: unknown = doc;
  for (const p of parts) {
    node = (node as Record<string, unknown>)[p];
    if (node === undefined) throw new Error(`patch path not found: ${op.path}`);
  }
  const parent = node as Record<string, unknown> | unknown[];
  if (Array.isArray(parent)) {
    const i = last === '-' ? parent.length : Number(last);
    if (op.op === 'add') parent.splice(i, 0, op.value);
    else if (op.op === 'replace') parent[i] = op.value;
    else parent.splice(i, 1);
    return;
  }
  if (op.op !== 'add' && !(last in parent)) throw new Error(`patch path not found: ${op.path}`);
  if (op.op === 'remove') delete parent[last];
  else parent[last] = op.value;
}
