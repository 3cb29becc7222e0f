/**
 * Waiting for the NATS connection to come back before sending a JetStream request.
 */
import type { NatsConnection } from '@nats-io/transport-node';

/**
 * Tracks whether the connection is up. nats.js drops what is published between a disconnect and
 * the reconnect (the pending buffer is reset), so a request sent in that window only fails by
 * timing out; waiting for the reconnect first avoids that.
 */
export class ConnectionGate {
  #up = true;
  #waiters: Array<() => void> = [];
  readonly #iterator: AsyncIterator<{ type: string }>;

  constructor(nc: NatsConnection) {
    this.#iterator = nc.status()[Symbol.asyncIterator]();
    void this.#watch();
  }

  async #watch(): Promise<void> {
    try {
      for (;;) {
        const next = await this.#iterator.next();
        if (next.done) break;
        if (next.value.type === 'disconnect') this.#up = false;
        else if (next.value.type === 'reconnect') this.#open();
      }
    } catch {
      /* the connection closed */
    }
    this.#open();
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

  /** Stops watching the connection and releases every waiter. */
  stop(): void {
    void this.#iterator.return?.();
    this.#open();
  }
}
