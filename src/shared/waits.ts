/** Waits that end early: on an abort, or after a time limit. */

/** Waits `ms`, or less once `signal` is aborted (its timer and listener are then cleared). */
export function sleepUnlessAborted(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * `work`, unless `signal` is aborted first: then it rejects at once with `why`, and what `work`
 * does later is ignored (a request to NATS while it is away lasts its whole timeout).
 */
export function unlessAborted<T>(work: Promise<T>, signal: AbortSignal, why: string): Promise<T> {
  work.catch(() => undefined);
  if (signal.aborted) return Promise.reject(new Error(why));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Error(why));
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/**
 * Waits for `work` at most `ms`: settles as it does, or after `ms` resolves (rejects with
 * `timeoutMessage` if one is given). What `work` does later is ignored.
 */
export async function withinMs(work: Promise<unknown>, ms: number, timeoutMessage?: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<void>((resolve, reject) => {
    timer = setTimeout(() => (timeoutMessage ? reject(new Error(timeoutMessage)) : resolve()), ms);
  });
  try {
    await Promise.race([work, limit]);
  } finally {
    clearTimeout(timer);
  }
}
