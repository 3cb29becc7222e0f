import type { DomainEvent, NewEvent } from '../protocol/events.js';
import type { OutboxCommand } from '../protocol/commands.js';

/**
 * The version an append expects the stream to be at. A number is the stream's current version
 * (0 = the stream has no events yet); 'any' skips the check.
 */
export type ExpectedVersion = number | 'any';

/** Options of {@link EventStore.appendToStream}. */
export interface AppendOptions {
  expectedVersion: ExpectedVersion;
  /** Commands emitted by the transition, stored atomically with its events by an outbox store. */
  commands?: OutboxCommand[];
}

/** What an acknowledged append returns: the stream's version after it. */
export interface AppendResult {
  nextExpectedVersion: number;
}

/**
 * Options of {@link EventStore.readStream}: both bounds are inclusive sequences, whole numbers of
 * at least 0 (anything else is a ValidationError); undefined means unbounded.
 */
export interface ReadOptions {
  from?: number;
  to?: number;
  /**
   * Only the last `last` events of the range (e.g. `{ last: 1 }`: the stream's latest event, which
   * says whether a session ended without folding it). A store may answer it without a scan.
   */
  last?: number;
}

/** A stream's events in order; `currentVersion` is the last sequence (0 for none). */
export interface ReadResult {
  events: DomainEvent[];
  currentVersion: number;
  exists: boolean;
}

/** A command stored by an append and not yet marked delivered. */
export interface PendingCommand extends OutboxCommand {
  /** The stream version of the append that stored it. */
  storedAtVersion: number;
}

/**
 * The event-store port. A stream is one session; its version is the sequence of its last event.
 * Events in a stream are totally ordered; sequences start at 1 and have no gaps.
 */
export interface EventStore {
  /**
   * Appends events (and the commands they carry) atomically at `expectedVersion`. Throws
   * ConcurrencyError when the stream has moved. Resolves only once the append is durable.
   * Each event's `sequence` is assigned by the store.
   */
  appendToStream(streamId: string, events: NewEvent[], options: AppendOptions): Promise<AppendResult>;
  /** Reads a stream; a missing stream gives `exists: false` and no events. */
  readStream(streamId: string, options?: ReadOptions): Promise<ReadResult>;
  /** Ids of every stream that has at least one event. */
  listStreams(): Promise<string[]>;
  /**
   * Every event of every stream, in one pass: each stream's events in order, streams possibly
   * interleaved. Rebuilding many sessions this way reads the log once instead of once per session.
   */
  readAll(): AsyncIterable<DomainEvent>;
  close(): Promise<void>;
}

/**
 * A store that keeps an outbox: the `commands` of an append are stored atomically with its events
 * and stay pending until marked delivered. The memory and file stores are outbox stores. On
 * JetStream the stream itself is the outbox: a command is pending while its TaskDispatched event
 * has no report, which the service derives from session state at start.
 */
export interface OutboxStore {
  /** Commands appended and not yet marked delivered, oldest first. */
  pendingCommands(): Promise<PendingCommand[]>;
  /** Marks commands as delivered, so a restart does not publish them again. Idempotent. */
  markDelivered(commandIds: string[]): Promise<void>;
}

export const isOutboxStore = (store: unknown): store is OutboxStore =>
  typeof (store as OutboxStore | undefined)?.pendingCommands === 'function';

/** Options of {@link aggregateStream}: how to fold, and the inclusive range of events to fold. */
export interface AggregateOptions<S> {
  evolve: (state: S, event: DomainEvent) => S;
  initialState: () => S;
  from?: number;
  to?: number;
}

/** A fold's result, with the stream's version and existence as {@link ReadResult} gives them. */
export interface AggregateResult<S> {
  state: S;
  currentVersion: number;
  exists: boolean;
}

/**
 * Folds a stream into state with an evolve function (emmett's aggregateStream). A store that can
 * fold events as they are read implements {@link StreamingRead}; any other is read, then folded.
 */
export async function aggregateStream<S>(
  store: EventStore,
  streamId: string,
  options: AggregateOptions<S>,
): Promise<AggregateResult<S>> {
  const range = { from: options.from ?? 1, ...(options.to === undefined ? {} : { to: options.to }) };
  let state = options.initialState();
  if (isStreamingRead(store)) {
    const { currentVersion, exists } = await store.readStreamEach(streamId, range, (event) => {
      state = options.evolve(state, event);
    });
    return { state, currentVersion, exists };
  }
  const { events, currentVersion, exists } = await store.readStream(streamId, range);
  for (const event of events) state = options.evolve(state, event);
  return { state, currentVersion, exists };
}

/**
 * A store that can hand a stream's events over one by one as it reads them, without holding them
 * all: a replay of a long session then folds while the read is still arriving (the JetStream store).
 */
export interface StreamingRead {
  /** As {@link EventStore.readStream}, each event given to `onEvent` in order instead of returned. */
  readStreamEach(
    streamId: string,
    options: ReadOptions,
    onEvent: (event: DomainEvent) => void,
  ): Promise<Omit<ReadResult, 'events'>>;
}

export const isStreamingRead = (store: unknown): store is StreamingRead =>
  typeof (store as StreamingRead | undefined)?.readStreamEach === 'function';

/** A stream's latest event as a scan of every stream gives it: enough to tell whether a session ended, and when. */
export interface LatestEvent {
  streamId: string;
  /** The event's type. */
  type: string;
  /**
   * When it happened, ms since the epoch: the event's `timestamp`, or on JetStream the time the
   * server stored it (the scan reads message headers, not bodies), at most moments later.
   */
  timestamp: number;
}

/**
 * A store that can give the latest event of every stream in one pass, without a read per stream:
 * what says which sessions ended, for a new leader's recovery and for retention, when most of a
 * long-lived store's sessions have (one read each cost seconds at tens of thousands of sessions on
 * JetStream).
 */
export interface LatestEvents {
  /**
   * The latest event of every stream that has one, each stream once, in no particular order; as
   * of the start of the scan (a stream appended to meanwhile may give its event of then or a later
   * one). Fails as {@link EventStore.readAll} does rather than end short.
   */
  latestEvents(): AsyncIterable<LatestEvent>;
}

export const hasLatestEvents = (store: unknown): store is LatestEvents =>
  typeof (store as LatestEvents | undefined)?.latestEvents === 'function';
