import type { Timers } from '../../src/actors/timers.js';

/** Timers that fire only when a test says so, recording what was set and cleared. */
export class FakeTimers implements Timers {
  private nextId = 0;
  readonly pending = new Map<number, { ms: number; fn: () => void }>();
  readonly history: number[] = [];
  readonly cleared: unknown[] = [];

  set(ms: number, fn: () => void): unknown {
    const id = ++this.nextId;
    this.pending.set(id, { ms, fn });
    this.history.push(ms);
    return id;
  }

  clear(handle: unknown): void {
    this.cleared.push(handle);
    this.pending.delete(handle as number);
  }

  /** Fires every pending timer once. */
  fireAll(): void {
    const due = [...this.pending.values()];
    this.pending.clear();
    for (const t of due) t.fn();
  }

  /** The delays of the timers still pending. */
  delays(): number[] {
    return [...this.pending.values()].map((t) => t.ms);
  }
}
