import { ConcurrencyError, ValidationError } from '../errors.js';
import type { OutboxCommand } from '../protocol/commands.js';
import type { DomainEvent, NewEvent } from '../protocol/events.js';
import type { ExpectedVersion, PendingCommand, ReadOptions, ReadResult } from './eventStore.js';

/**
 * Throws ConcurrencyError unless `expected` is 'any' or equals `actual`. Shared by the stores so
 * they agree on what a mismatch is.
 */
export function checkExpectedVersion(streamId: string, expected: ExpectedVersion, actual: number): void {
  if (expected === 'any') return;
  if (!Number.isInteger(expected) || expected < 0) {
    throw new ValidationError(`stream ${streamId}: expectedVersion must be 'any' or a non-negative integer, got ${expected}`);
  }
  if (expected !== actual) throw new ConcurrencyError(streamId, expected, actual);
}

/**
 * What {@link landedPrefix} reads of a stream: its version and the ids of its last events. The
 * {@link StreamIndex} is one; the file store's adds the appends it is still writing.
 */
export interface StreamIds {
  version(streamId: string): number;
  /** The ids of the stream's events `from`..its version, in order. */
  idsFrom(streamId: string, from: number): string[];
}

/**
 * How many of `events`, from the first, are already the stream's last events, stored right after
 * `expected` (at `'any'`: wherever the stream's tip is one of them): a retry of an append whose
 * result the caller never saw, or of one that landed in part. Every one of them must match, not
 * only the tip. The stores then append only the rest (nothing when all landed), as JetStream, whose
 * appends can land in part, does by the events' ids: a retry is idempotent on every store. 0 when
 * none are.
 */
export function landedPrefix(stream: StreamIds, streamId: string, expected: ExpectedVersion, events: readonly NewEvent[]): number {
  const version = stream.version(streamId);
  if (events.length === 0 || version === 0) return 0;
  let landed: number;
  if (expected === 'any') {
    const tip = stream.idsFrom(streamId, version)[0];
    landed = events.findIndex((e) => e.id === tip) + 1;
  } else {
    landed = version - expected;
  }
  if (!Number.isInteger(landed) || landed < 1 || landed > events.length || landed > version) return 0;
  const stored = stream.idsFrom(streamId, version - landed + 1);
  // The length too: ids a view could not give must not count as matching.
  return stored.length === landed && stored.every((id, i) => id === events[i]!.id) ? landed : 0;
}

/** Gives `events` the sequences that follow `version` (1-based, no gaps). */
export function sequenceEvents(events: readonly NewEvent[], version: number): DomainEvent[] {
  return events.map((event, i) => ({ ...event, sequence: version + i + 1 }) as DomainEvent);
}

/**
 * An event as the index keeps it: an object (deep copied in by the caller) or the JSON text it was
 * written to the log as. Text costs nothing extra to keep (the file store has serialised it anyway)
 * and a read must copy out regardless, so parsing on read replaces a clone.
 */
export type StoredEvent = DomainEvent | string;

/** The first of `ids` that `known` (id → version) holds, with its version. */
export function firstKnownId(known: ReadonlyMap<string, number> | undefined, ids: readonly string[]): { id: string; version: number } | undefined {
  if (!known) return undefined;
  for (const id of ids) {
    const version = known.get(id);
    if (version !== undefined) return { id, version };
  }
  return undefined;
}

const idOf = (event: StoredEvent): string => (typeof event === 'string' ? (JSON.parse(event) as { id: string }).id : event.id);

const copyOut = (event: StoredEvent): DomainEvent =>
  typeof event === 'string' ? (JSON.parse(event) as DomainEvent) : structuredClone(event);

/**
 * The in-memory state both embedded stores keep: each stream's events and the outbox's pending
 * commands. It trusts its caller for concurrency checks and copies in; it only guards that an
 * append continues the stream, so a bug upstream fails loudly instead of leaving a gap.
 */
export class StreamIndex implements StreamIds {
  private readonly streams = new Map<string, StoredEvent[]>();
  /** Each stream's event ids and the version each was stored at (ids are unique per stream). */
  private readonly ids = new Map<string, Map<string, number>>();
  /** Insertion order is append order, which is what "oldest first" means for the outbox. */
  private readonly pending = new Map<string, PendingCommand>();

  /** The stream's version: the sequence of its last event, 0 when it has none. */
  version(streamId: string): number {
    return this.streams.get(streamId)?.length ?? 0;
  }

  /**
   * Adds events sequenced from `fromVersion + 1`, and their commands; returns the new version.
   * Commands are kept as given, so the caller passes copies.
   */
  append(
    streamId: string,
    fromVersion: number,
    events: readonly StoredEvent[],
    commands: readonly OutboxCommand[],
    eventIds: readonly string[] = events.map(idOf),
  ): number {
    const current = this.version(streamId);
    if (fromVersion !== current) {
      throw new Error(`stream ${streamId}: events from version ${fromVersion} do not follow version ${current}`);
    }
    if (events.length > 0) {
      const stream = this.streams.get(streamId);
      if (stream) for (const event of events) stream.push(event);
      else this.streams.set(streamId, [...events]);
      let known = this.ids.get(streamId);
      if (!known) this.ids.set(streamId, (known = new Map()));
      // The first position of an id is kept (a log written before ids were checked may repeat one).
      eventIds.forEach((id, i) => known.has(id) || known.set(id, fromVersion + i + 1));
    }
    const version = current + events.length;
    for (const command of commands) {
      // A command id appended again while still pending keeps its first (older) position.
      if (!this.pending.has(command.id)) this.pending.set(command.id, { ...command, storedAtVersion: version });
    }
    return version;
  }

  /** The ids of the stream's events `from`..its version, in order (none for a missing stream). */
  idsFrom(streamId: string, from: number): string[] {
    return (this.streams.get(streamId) ?? []).slice(Math.max(0, from - 1)).map(idOf);
  }

  /** The first of `eventIds` the stream already holds, with its version; undefined if none. */
  storedId(streamId: string, eventIds: readonly string[]): { id: string; version: number } | undefined {
    return firstKnownId(this.ids.get(streamId), eventIds);
  }

  /** A copy of the stream's events within the inclusive bounds of `options`. */
  read(streamId: string, options: ReadOptions = {}): ReadResult {
    const stream = this.streams.get(streamId);
    if (!stream) return { events: [], currentVersion: 0, exists: false };
    const to = Math.min(stream.length, options.to ?? stream.length);
    const from = Math.max(1, options.from ?? 1, options.last === undefined ? 1 : to - options.last + 1);
    const events = from > to ? [] : stream.slice(from - 1, to).map(copyOut);
    return { events, currentVersion: stream.length, exists: true };
  }

  list(): string[] {
    return [...this.streams.keys()];
  }

  isPending(commandId: string): boolean {
    return this.pending.has(commandId);
  }

  pendingCommands(): PendingCommand[] {
    return structuredClone([...this.pending.values()]);
  }

  markDelivered(commandIds: readonly string[]): void {
    for (const id of commandIds) this.pending.delete(id);
  }
}
