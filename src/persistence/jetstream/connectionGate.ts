/**
 * Watching the NATS connection's status, and waiting for it to come back before sending a
 * JetStream request.
 */
import type { NatsConnection, Status } from '@nats-io/transport-node';

/**
 * Calls `onStatus` with each status event of `nc` until the returned function is called, which
 * removes the listener from `nc` at once. (Ending the iteration with `return()` would not: an async
 * generator suspended at an await only returns once the next status event wakes it, so the
 * listener would stay on a quiet connection for good.) The listener also goes when `nc` closes;
 * `onEnd` runs once the watch has ended, either way.
 */
export function watchStatus(nc: NatsConnection, onStatus: (status: Status) => void, onEnd?: () => void): () => void {
  // Typed as an AsyncIterable; nats.js returns its QueuedIterator, whose stop() ends it now.
  const statuses = nc.status() as AsyncIterable<Status> & { stop?: () => void };
  const iterator = statuses[Symbol.asyncIterator]();
  void (async () => {
    for (;;) {
      const next = await iterator.next();
      if (next.done) return;
      onStatus(next.value);
    }
  })()
    .catch(() => undefined) // the connection closed
    .finally(onEnd);
  return () => (statuses.stop ? statuses.stop() : void iterator.return?.());
}

/**
 * Tracks whether the connection is up. nats.js drops what is published between a disconnect and
 * the reconnect (the pending buffer is reset), so a request sent in that window only fails by
 * timing out; waiting for the reconnect first avoids that.
 */
export class ConnectionGate {
  #up = true;
  #waiters: Array<() => void> = [];
  readonly #unwatch: () => void;

  constructor(nc: NatsConnection) {
    this.#unwatch = watchStatus(nc, (status) => {
      if (status.type === 'disconnect') this.#up = false;
      else if (status.type === 'reconnect') this.#open();
    }, () => this.#open()); // closed for good: waiting would only delay the failure
  }

  #open(): void {
    this.#up = true;
    for (const wake of this.#waiters.splice(0)) wake();
  }

  /** Resolves when connected (at once if it is), or after `ms` at the latest. */
  async ready(ms: number): Promise<void> {
    if (this.#up) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Stops watching the connection (its status listener is removed now) and releases every waiter. */
  stop(): void {
    this.#unwatch();
    this.#open();
  }
}
