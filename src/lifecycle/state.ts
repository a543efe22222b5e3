/** A node's life: `starting -> ready -> draining -> stopped` (docs/architecture.md, "Drain"). */
export type LifecycleState = 'starting' | 'ready' | 'draining' | 'stopped';
