/** A node's life: `starting -> ready -> draining -> stopped` (DESIGN.md "Lifecycle"). */
export type LifecycleState = 'starting' | 'ready' | 'draining' | 'stopped';
