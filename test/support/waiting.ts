/**
 * Waiting in integration tests without sleeping for a fixed time: a latch released by the code
 * under test, an abort signal, or, for broker state that sends no notification, a polled condition
 * with a deadline.
 */

/** Polls `check` every 25 ms until it holds; fails naming `what` after `ms`. */
export async function until(check: () => Promise<boolean> | boolean, what: string | (() => string), ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === 'function' ? what() : what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A promise and the function that resolves it. */
export function latch(): { promise: Promise<void>; release: () => void } {
  let release!: () => void;
  const promise = new Promise<void>((r) => (release = r));
  return { promise, release };
}

/** Resolves when `signal` is aborted. */
export const aborted = (signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
