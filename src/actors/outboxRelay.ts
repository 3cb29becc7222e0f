import type { Logger } from 'pino';
import type { OutboxStore } from '../persistence/eventStore.js';
import type { OutboxCommand } from '../protocol/commands.js';
import type { Backoff } from '../protocol/domain.js';
import { commandSubject, type Subjects } from '../protocol/subjects.js';
import { HEADER, type Bus } from './bus.js';
import type { Effects } from './planner.js';
import { realTimers, type Timers } from './timers.js';

/** Options of {@link OutboxRelay}. */
export interface OutboxRelayOptions {
  bus: Bus;
  subjects: Subjects;
  /** Where delivered commands are marked; without one, delivery is not remembered across restarts. */
  outbox?: OutboxStore;
  backoff?: Backoff;
  timers?: Timers;
  logger: Logger;
  /**
   * Whether a command no longer needs delivering (its session was cancelled or ended meanwhile);
   * such a command is marked delivered and dropped instead of being published or retried.
   */
  isObsolete?: (entry: OutboxCommand) => Promise<boolean>;
}

/**
 * Publishes the commands of acknowledged appends on the bus, retrying with exponential backoff
 * until a subscriber takes them, then marks them delivered. `recover()` publishes what a crash
 * left stored but undelivered. Commands carry stable ids, so a duplicate is recognisable.
 */
export class OutboxRelay implements Effects {
  private readonly inFlight = new Set<Promise<void>>();
  private readonly waiting = new Map<string, unknown>();
  private closed = false;
  private readonly backoff: Backoff;
  private readonly timers: Timers;

  constructor(private readonly o: OutboxRelayOptions) {
    this.backoff = o.backoff ?? { baseMs: 50, factor: 2, maxMs: 5_000 };
    this.timers = o.timers ?? realTimers;
  }

  perform(commands: OutboxCommand[]): void {
    for (const command of commands) this.deliver(command, 1);
  }

  /** Publishes every command that was stored but not marked delivered (after a crash). */
  async recover(): Promise<number> {
    const pending = (await this.o.outbox?.pendingCommands()) ?? [];
    this.perform(pending);
    return pending.length;
  }

  /** Stops retrying and waits for publishes under way. Undelivered commands stay pending. */
  async close(): Promise<void> {
    this.closed = true;
    for (const handle of this.waiting.values()) this.timers.clear(handle);
    this.waiting.clear();
    await Promise.all(this.inFlight);
  }

  private deliver(entry: OutboxCommand, attempt: number): void {
    if (this.closed) return;
    const run = this.publish(entry, attempt);
    this.inFlight.add(run);
    void run.finally(() => this.inFlight.delete(run));
  }

  private async publish(entry: OutboxCommand, attempt: number): Promise<void> {
    const headers = {
      [HEADER.type]: entry.command.type,
      [HEADER.correlationId]: entry.correlationId,
      [HEADER.causationId]: entry.causationId,
      [HEADER.messageId]: entry.id,
    };
    try {
      if (await this.o.isObsolete?.(entry)) {
        this.o.logger.debug({ commandId: entry.id, sessionId: entry.sessionId }, 'command obsolete; dropped');
      } else {
        await this.o.bus.publish(commandSubject(this.o.subjects, entry), entry.command, headers);
      }
      await this.o.outbox?.markDelivered([entry.id]);
    } catch (error) {
      if (this.closed) return;
      const { baseMs, factor, maxMs } = this.backoff;
      const delay = Math.min(maxMs, baseMs * factor ** (attempt - 1));
      this.o.logger.warn({ commandId: entry.id, attempt, delay, err: error }, 'command not delivered; retrying');
      const handle = this.timers.set(delay, () => {
        this.waiting.delete(entry.id);
        this.deliver(entry, attempt + 1);
      });
      this.waiting.set(entry.id, handle);
    }
  }
}
