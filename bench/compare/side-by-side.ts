/**
 * Result rows for one figure measured on every target: a row per target, then the ratio rows
 * `pushcast/socketio` and `pushcast/ws` where the figure is a headline one. Rows of one figure
 * stay together, so the table reads across the targets.
 */
import { record } from '../support.js';
import { TARGET_KINDS, type TargetKind } from './targets.js';

/** One figure: how to read it from a target's outcome, and whether to add ratio rows. */
export interface Figure<T> {
  metric: string;
  unit: string;
  of: (outcome: T) => number | undefined;
  ratio?: boolean;
}

/** Records every figure for the targets that have an outcome. */
export function recordSideBySide<T>(
  bench: string,
  outcomes: Partial<Record<TargetKind, T>>,
  figures: Array<Figure<T>>,
): void {
  for (const figure of figures) {
    const values = new Map<TargetKind, number>();
    for (const kind of TARGET_KINDS) {
      const outcome = outcomes[kind];
      const value = outcome === undefined ? undefined : figure.of(outcome);
      if (value === undefined || !Number.isFinite(value)) continue;
      values.set(kind, value);
      record(bench, `${figure.metric} [${kind}]`, value, figure.unit);
    }
    if (!figure.ratio) continue;
    const ours = values.get('pushcast');
    for (const baseline of ['socketio', 'ws'] as const) {
      const theirs = values.get(baseline);
      if (ours === undefined || theirs === undefined || theirs === 0) continue;
      record(bench, `${figure.metric} [pushcast/${baseline}]`, ours / theirs, 'x');
    }
  }
}

/** The outcomes of the targets, each reduced to a part of it (the part that exists). */
export function eachOutcome<T, U>(
  outcomes: Partial<Record<TargetKind, T>>,
  part: (outcome: T) => U | undefined,
): Partial<Record<TargetKind, U>> {
  const parts: Partial<Record<TargetKind, U>> = {};
  for (const kind of TARGET_KINDS) {
    const outcome = outcomes[kind];
    const value = outcome === undefined ? undefined : part(outcome);
    if (value !== undefined) parts[kind] = value;
  }
  return parts;
}
