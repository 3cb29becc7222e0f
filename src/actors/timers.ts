/** Timers, injected so the runtime's waits can be driven by tests and closed cleanly. */
export interface Timers {
  set(ms: number, fn: () => void): unknown;
  clear(handle: unknown): void;
}

/** Real timers that do not keep the process alive on their own. */
export const realTimers: Timers = {
  set: (ms, fn) => setTimeout(fn, Math.max(0, ms)).unref(),
  clear: (handle) => clearTimeout(handle as NodeJS.Timeout),
};
