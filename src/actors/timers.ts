/** Timers, injected so the runtime's waits can be driven by tests and closed cleanly. */
export interface Timers {
  set(ms: number, fn: () => void): unknown;
  clear(handle: unknown): void;
}

/**
 * The longest delay a Node timer honours (2^31−1 ms, about 24.8 days). Node fires a longer one
 * after 1 ms instead (with a TimeoutOverflowWarning), so callers that wait longer arm this much and
 * re-arm for the rest when it fires.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Real timers. They keep the process alive: a pending retry is work, and close() clears them. */
export const realTimers: Timers = {
  // Capped here too, so no caller can make a timer fire at once by asking for too long a wait.
  set: (ms, fn) => setTimeout(fn, Math.min(MAX_TIMER_MS, Math.max(0, ms))),
  clear: (handle) => clearTimeout(handle as NodeJS.Timeout),
};
