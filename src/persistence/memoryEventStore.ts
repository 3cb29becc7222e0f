import { StoreUnavailableError } from '../errors.js';
import type { NewEvent } from '../protocol/events.js';
import type {
  AppendOptions,
  AppendResult,
  EventStore,
  OutboxStore,
} from './eventStore.js';
import { checkNewEvents, storedIdError } from './appendChecks.js';
import { IndexedEventStore } from './indexedEventStore.js';
import { checkExpectedVersion, landedPrefix, sequenceEvents, StreamIndex } from './streamIndex.js';

/**
 * An event store and outbox held in memory, for tests and throwaway sessions. Every method does
 * its work synchronously before its first await, so concurrent calls are applied in call order:
 * of two appends at the same expected version exactly one wins. Events and commands are deep
 * copied on the way in and out, so callers can never mutate stored history.
 */
export class MemoryEventStore extends IndexedEventStore implements EventStore, OutboxStore {
  protected readonly index = new StreamIndex();
  private closed = false;

  /** Appends `events` (and `options.commands`) atomically at `options.expectedVersion`. */
  async appendToStream(streamId: string, events: NewEvent[], options: AppendOptions): Promise<AppendResult> {
    this.assertOpen();
    checkNewEvents(streamId, events, options);
    const current = this.index.version(streamId);
    const landed = landedPrefix(this.index, streamId, options.expectedVersion, events);
    if (landed > 0 && landed === events.length) return { nextExpectedVersion: current };
    if (landed > 0) events = events.slice(landed); // a retry: the rest follows what landed
    else checkExpectedVersion(streamId, options.expectedVersion, current);
    const stored = this.index.storedId(streamId, events.map((e) => e.id));
    if (stored) throw storedIdError(streamId, stored.id, stored.version);
    const commands = options.commands ?? [];
    if (events.length === 0 && commands.length === 0) return { nextExpectedVersion: current };
    const sequenced = structuredClone(sequenceEvents(events, current));
    const nextExpectedVersion = this.index.append(streamId, current, sequenced, structuredClone(commands));
    return { nextExpectedVersion };
  }

  /** Removes the commands from the outbox; unknown or already delivered ids are ignored. */
  async markDelivered(commandIds: string[]): Promise<void> {
    this.assertOpen();
    this.index.markDelivered(commandIds);
  }

  /** Closes the store; later calls throw StoreUnavailableError. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
  }

  protected assertOpen(): void {
    if (this.closed) throw new StoreUnavailableError('memory event store is closed');
  }
}
