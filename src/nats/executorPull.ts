/**
 * The executor's pull loop for one durable consumer. It pulls only as many commands as it has free
 * handler slots (`fetch({max_messages: free})`), so every command this process holds is one it is
 * about to handle: none waits in a client buffer, where no progress ack would reach it and the
 * ack wait would hand it to another executor. Each command is kept alive with `working()` from the
 * moment it is yielded until it is handled (acked, nak'd or terminated).
 */
import type { Consumer, ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import type { Logger } from 'pino';

/** How long one pull waits on the server for commands before it is renewed. */
const FETCH_EXPIRES_MS = 30_000;
/** Pause after a failed pull (a reconnect, a consumer being recreated) before pulling again. */
const RETRY_PAUSE_MS = 1_000;

/** What a PullLoop pulls from and hands commands to. */
export interface PullLoopOptions {
  consumer: Consumer;
  /** Commands handled at once. */
  concurrency: number;
  /** The consumer's ack wait: progress acks go out every ackWait/3. */
  ackWaitMs: number;
  /** Handles one command, settling it (ack, nak or term) before it resolves. */
  handle(m: JsMsg): Promise<void>;
  /** True once the connection is closed for good: the loop then ends. */
  isClosed(): boolean;
  logger: Logger;
  durable: string;
  /**
   * Called after a failed pull: makes the consumer again if it is gone (deleted by hand; the pulls
   * of a deleted consumer fail for ever) and returns the one to pull from. Fails while NATS is away.
   */
  rebind?: () => Promise<Consumer>;
}

/** Sends `working()` every ackWait/3 until the returned function is called. */
export function keepAlive(m: JsMsg, ackWaitMs: number): () => void {
  const timer = setInterval(() => m.working(), Math.max(50, Math.floor(ackWaitMs / 3)));
  return () => clearInterval(timer);
}

/** Pulls commands while slots are free and hands each one to `handle`; see the module comment. */
export class PullLoop {
  readonly #opts: PullLoopOptions;
  #consumer: Consumer;
  readonly #slots: Semaphore;
  readonly #running = new Set<Promise<void>>();
  #stopping = false;
  #batch: ConsumerMessages | undefined;
  #wake: (() => void) | undefined;
  /** Resolves when the loop has stopped pulling. */
  readonly done: Promise<void>;

  constructor(opts: PullLoopOptions) {
    this.#opts = opts;
    this.#consumer = opts.consumer;
    this.#slots = new Semaphore(opts.concurrency);
    this.done = this.#run().catch((err: unknown) => opts.logger.error({ err, durable: opts.durable }, 'executor consumer stopped'));
  }

  /** Stops pulling at once (an open pull is cancelled); running handlers go on. */
  stop(): void {
    this.#stopping = true;
    this.#batch?.stop();
    this.#wake?.();
  }

  /** Resolves once the loop has stopped and every command it took is handled. */
  async drained(): Promise<void> {
    await this.done;
    while (this.#running.size > 0) await Promise.allSettled([...this.#running]);
  }

  async #run(): Promise<void> {
    while (!this.#stopping && !this.#opts.isClosed()) {
      const free = await this.#slots.acquireFree();
      let taken = 0;
      try {
        if (this.#stopping) break;
        this.#batch = await this.#consumer.fetch({ max_messages: free, expires: FETCH_EXPIRES_MS });
        for await (const m of this.#batch) {
          // After a reconnect nats.js pulls a whole batch again within the same fetch: never run
          // more than the slots taken for it; hand the rest back at once.
          if (taken >= free) {
            m.nak();
            continue;
          }
          taken++;
          this.#start(m);
          if (taken === free) this.#batch.stop();
        }
      } catch (err) {
        if (this.#stopping || this.#opts.isClosed()) break;
        this.#opts.logger.warn({ err, durable: this.#opts.durable }, 'pull failed; pulling again');
        await this.#pause(RETRY_PAUSE_MS);
        await this.#rebind();
      } finally {
        this.#batch = undefined;
        this.#slots.release(free - taken);
      }
    }
  }

  /** Binds to the consumer anew (made again if it was deleted); a failure is retried after the next failed pull. */
  async #rebind(): Promise<void> {
    if (!this.#opts.rebind || this.#stopping || this.#opts.isClosed()) return;
    try {
      this.#consumer = await this.#opts.rebind();
    } catch (err) {
      this.#opts.logger.warn({ err, durable: this.#opts.durable }, 'consumer not bound again; trying after the next pull');
    }
  }

  /** Starts handling one command in a slot already taken for it. */
  #start(m: JsMsg): void {
    if (this.#stopping) {
      // Yielded after stop(): let another executor take it now rather than after the ack wait.
      m.nak();
      this.#slots.release(1);
      return;
    }
    const stopKeepAlive = keepAlive(m, this.#opts.ackWaitMs);
    const work = this.#opts
      .handle(m)
      .catch((err: unknown) => this.#opts.logger.error({ err, durable: this.#opts.durable }, 'command handling failed'))
      .finally(() => {
        stopKeepAlive();
        this.#slots.release(1);
        this.#running.delete(work);
      });
    this.#running.add(work);
  }

  /** Waits `ms`, or less if the loop is stopped meanwhile. */
  async #pause(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.#wake = undefined;
  }
}

/** A counting semaphore whose holder can take every free permit at once. */
class Semaphore {
  #free: number;
  #waiter: (() => void) | undefined;
  constructor(n: number) {
    this.#free = n;
  }
  /** Waits until at least one permit is free, then takes all free permits and returns how many. */
  async acquireFree(): Promise<number> {
    if (this.#free === 0) await new Promise<void>((resolve) => (this.#waiter = resolve));
    const n = this.#free;
    this.#free = 0;
    return n;
  }
  release(n: number): void {
    if (n <= 0) return;
    this.#free += n;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.();
  }
}
