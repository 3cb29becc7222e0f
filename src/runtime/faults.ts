import type { Logger } from 'pino';
import { isCorruptLogError, isStoreUnavailableError } from '../errors.js';
import { hasLatestEvents, type AppendOptions, type EventStore, type OutboxStore, type ReadOptions } from '../persistence/eventStore.js';
import type { NewEvent } from '../protocol/events.js';
import { RecentMap } from '../shared/recentMap.js';

/**
 * A failure the runtime cannot get past on its own. Without `sessionId` the store itself is
 * unusable (a poisoned log, a corrupt record) and every session is stuck; with one, an input of
 * that session keeps failing. Whoever drives a session should stop and say so instead of waiting.
 */
export interface RuntimeFault {
  error: Error;
  sessionId?: string;
}

/** Told about every {@link RuntimeFault}. */
export type FaultListener = (fault: RuntimeFault) => void;

/** Errors that will not go away until the store is reopened: retrying them cannot help. */
export function isStoreFault(error: unknown): error is Error {
  return isStoreUnavailableError(error) || isCorruptLogError(error);
}

/** The runtime's fault listeners. */
export class Faults {
  private readonly listeners = new Set<FaultListener>();
  private closed = false;

  constructor(private readonly logger: Logger) {}

  /** Subscribes; returns the unsubscribe function. */
  on(listener: FaultListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  report(fault: RuntimeFault): void {
    // Once the runtime closes, a closed store failing is expected, not a fault.
    if (this.closed) return;
    this.logger.error({ err: fault.error, sessionId: fault.sessionId }, 'runtime fault; sessions cannot go on');
    for (const listener of [...this.listeners]) listener(fault);
  }

  /** Stops reporting (the runtime is closing). */
  close(): void {
    this.closed = true;
    this.listeners.clear();
  }
}

/**
 * Wraps a store so that an error meaning "the store is unusable" is reported as a fault wherever
 * it happens (an executor's report, a retry timer, the relay's delivery marks, a client's input):
 * each of those paths otherwise only logs and retries, which looks like a hang. Errors still
 * reach the caller unchanged.
 */
export function faultReportingStore(store: EventStore & OutboxStore, faults: Faults): EventStore & OutboxStore {
  const watch = <T>(work: Promise<T>): Promise<T> =>
    work.catch((error: unknown) => {
      if (isStoreFault(error)) faults.report({ error });
      throw error;
    });
  return {
    appendToStream: (streamId: string, events: NewEvent[], options: AppendOptions) =>
      watch(store.appendToStream(streamId, events, options)),
    readStream: (streamId: string, options?: ReadOptions) => watch(store.readStream(streamId, options)),
    listStreams: () => watch(store.listStreams()),
    readAll: () => store.readAll(),
    // Kept when the store has it: a recovery over the wrapper scans once instead of reading each session.
    ...(hasLatestEvents(store) ? { latestEvents: () => store.latestEvents() } : {}),
    pendingCommands: () => watch(store.pendingCommands()),
    markDelivered: (ids: string[]) => watch(store.markDelivered(ids)),
    // Closing is not a fault, and a store closed on purpose is not one either.
    close: () => store.close(),
  };
}

/** How many times in a row one bus input may fail before its session is reported stuck. */
export const INPUT_FAILURE_LIMIT = 5;

/**
 * Counts consecutive failures of bus inputs by message id. A publisher (the executor) retries an
 * input that failed; one that fails {@link INPUT_FAILURE_LIMIT} times running is not transient,
 * and its session is reported stuck. A store fault is reported at once.
 */
export class InputFailures {
  // Bounded: an input whose publisher gave up is never seen again and must not be kept forever.
  private readonly counts = new RecentMap<string, number>(1_000);

  constructor(private readonly faults: Faults, private readonly limit = INPUT_FAILURE_LIMIT) {}

  applied(messageId: string | undefined): void {
    if (messageId !== undefined) this.counts.delete(messageId);
  }

  failed(sessionId: string, messageId: string | undefined, error: unknown): void {
    // Also one met outside the store (a record the upcaster cannot read): reported at once. The
    // store wrapper may have reported it too; a second report changes nothing for a driver.
    if (isStoreFault(error)) return this.faults.report({ error });
    if (messageId === undefined) return;
    const count = (this.counts.get(messageId) ?? 0) + 1;
    this.counts.set(messageId, count);
    if (count < this.limit) return;
    this.counts.delete(messageId);
    const reason = error instanceof Error ? error.message : String(error);
    const stuck = new Error(`input ${messageId} of session ${sessionId} not applied after ${count} attempts: ${reason}`, { cause: error });
    this.faults.report({ error: stuck, sessionId });
  }
}
