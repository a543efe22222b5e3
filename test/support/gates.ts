/**
 * Holds the next authorizeJoin of a channel until the test opens it: a join that is really
 * pending, without sleeping. Only the armed call waits; later calls (a refresh's check) pass.
 */
export class Gates {
  private readonly armed = new Map<string, { reach: () => void; opened: Promise<void> }>();

  /** Holds the next authorizeJoin of `channel`: `reached` once it is called, `open` lets it go. */
  arm(channel: string): { reached: Promise<void>; open: () => void } {
    let reach!: () => void;
    let open!: () => void;
    const reached = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`authorizeJoin(${channel}) was never called`)),
        5000,
      );
      reach = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    const opened = new Promise<void>((resolve) => (open = resolve));
    this.armed.set(channel, { reach, opened });
    return { reached, open };
  }

  /** Called by the hook: waits while the channel's gate is armed and closed. */
  async pass(channel: string): Promise<void> {
    const gate = this.armed.get(channel);
    if (!gate) return;
    this.armed.delete(channel);
    gate.reach();
    await gate.opened;
  }
}
