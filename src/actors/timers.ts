/** Timers, injected so the runtime's waits can be driven by tests and closed cleanly. */
export interface Timers {
  set(ms: number, fn: () => void): unknown;
  clear(handle: unknown): void;
}

/** Real timers. They keep the process alive: a pending retry is work, and close() clears them. */
export const realTimers: Timers = {
  set: (ms, fn) => setTimeout(fn, Math.max(0, ms)),
  clear: (handle) => clearTimeout(handle as NodeJS.Timeout),
};
