/**
 * The event store on JetStream (server 2.9+). A session is one subject, `<prefix>.ev.<sessionId>`,
 * in the shared jetplan stream. Optimistic concurrency is the server's
 * `Nats-Expected-Last-Subject-Sequence` check; idempotent retries are `Nats-Msg-Id` dedup.
 *
 * Two numbers are in play: the JetStream stream sequence of a message (global to the stream, with
 * gaps from a session's point of view) and the event's `sequence` (the session's own version,
 * 1..n), which is stored in the message body. The store maps an expected version to the stream
 * sequence of the session's last message with one `last_by_subj` lookup, cached per session.
 *
 * Not an outbox store: on JetStream the stream itself is the outbox (see OutboxStore).
 */
import { jetstream, jetstreamManager, type JetStreamManager, type PubAck } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { ConcurrencyError, StoreUnavailableError, ValidationError } from '../../errors.js';
import { checkNewEvents, checkReadOptions, checkStreamId, storedIdError } from '../appendChecks.js';
import type { DomainEvent, NewEvent } from '../../protocol/events.js';
import type { AppendOptions, AppendResult, EventStore, LatestEvent, LatestEvents, ReadOptions, ReadResult, StreamingRead } from '../eventStore.js';
import { ConnectionGate } from './connectionGate.js';
import { PubAckMux } from './pubAckMux.js';
import {
  alreadyLanded,
  endsWith,
  eventBody,
  fetchTip,
  heldIdError,
  storedAt,
  storedEvents,
  sameEvent,
  oversized,
  publishEvent,
  type AppendContext,
  type Position,
} from './jetStreamAppends.js';
import {
  FirstEventConflict,
  isPermanentPublishError,
  isWrongLastSequence,
  retryTransient,
  sleep,
  translateStoreError,
} from './jetStreamErrors.js';
import { readAllEvents, readLatestEvents, readSession, type SessionReadContext } from './jetStreamReads.js';
import { KeyedQueue } from '../../shared/keyedQueue.js';
import { RecentMap } from '../../shared/recentMap.js';
import {
  ensureStream,
  existingStream,
  subjects,
  type JetplanStreamOptions,
  type ResolvedStreamOptions,
  type Subjects,
} from './streamConfig.js';

/** Counters for tests and metrics. */
export interface JetStreamEventStoreStats {
  /** `last_by_subj` lookups made by appends (cache misses). */
  lookups: number;
  /** Appends that used the cached position without a lookup. */
  cacheHits: number;
  /** PubAcks flagged `duplicate` that were accepted as idempotent retries. */
  duplicates: number;
  /** Appends rejected by the server's expected-last-subject-sequence check (code 10071). */
  serverConflicts: number;
}

/** Options of {@link JetStreamEventStore.create}. */
export interface JetStreamEventStoreOptions extends JetplanStreamOptions {
  /**
   * Create or update the stream (default true: what the planner service does). Clients pass false:
   * they only read and publish, and must not change an operator's stream.
   */
  ensureStream?: boolean;
  /** PubAck / API timeout per request, ms (default 5000). */
  requestTimeoutMs?: number;
  /** How long to keep retrying a request that timed out or found no responder, ms (default 15000). */
  retryForMs?: number;
}

/** Sessions whose position is cached at most: one entry per session ever written would never shrink. */
export const MAX_CACHED_POSITIONS = 10_000;

/**
 * The largest message the stream stores: its max_msg_size (-1 or 0: none) and the server's
 * max_payload, whichever is lower. Read at start and again before an append is refused for it; a
 * limit lowered meanwhile is caught when the server refuses the message.
 */
export async function readMessageLimit(nc: NatsConnection, jsm: JetStreamManager, streamName: string): Promise<number> {
  const { config } = await jsm.streams.info(streamName);
  const limits = [config.max_msg_size, nc.info?.max_payload].filter((n): n is number => n !== undefined && n > 0);
  return limits.length === 0 ? Number.MAX_SAFE_INTEGER : Math.min(...limits);
}

/** The {@link EventStore} port on a JetStream stream shared by all sessions. */
export class JetStreamEventStore implements EventStore, StreamingRead, LatestEvents {
  readonly #nc: NatsConnection;
  /** Everything the read and append helpers need; one object so they take it explicitly. */
  readonly #ctx: AppendContext & SessionReadContext;
  readonly #options: ResolvedStreamOptions;
  readonly #subjects: Subjects;
  /**
   * Positions of the sessions this store appended to or looked up most recently. A hint, never the
   * guard: a forgotten one costs a lookup.
   */
  readonly #positions = new RecentMap<string, Position>(MAX_CACHED_POSITIONS);
  /**
   * Appends to one session run one at a time within this store, so this process never interleaves
   * two multi-event appends (which 'any' would otherwise allow) and a loser fails on its cache
   * check. Other sessions' appends run concurrently; other processes are guarded by the server.
   */
  readonly #queues = new KeyedQueue();
  readonly #stats: JetStreamEventStoreStats = { lookups: 0, cacheHits: 0, duplicates: 0, serverConflicts: 0 };
  #closed = false;

  private constructor(nc: NatsConnection, ctx: AppendContext & SessionReadContext, options: ResolvedStreamOptions) {
    this.#nc = nc;
    this.#ctx = ctx;
    this.#options = options;
    this.#subjects = subjects(options.subjectPrefix);
  }

  /** Ensures the stream exists, then returns a store on it. The caller keeps owning `nc`. */
  static async create(nc: NatsConnection, options: JetStreamEventStoreOptions = {}): Promise<JetStreamEventStore> {
    const timeoutMs = options.requestTimeoutMs ?? 5_000;
    const jsm = await jetstreamManager(nc, { timeout: timeoutMs });
    const resolved = options.ensureStream === false ? await existingStream(jsm, options) : await ensureStream(nc, options);
    const js = jetstream(nc, { timeout: timeoutMs });
    const ctx = {
      nc, js, jsm, publisher: new PubAckMux(nc), timeoutMs, streamName: resolved.streamName, gate: new ConnectionGate(nc),
      retryForMs: options.retryForMs ?? 15_000, isClosed: () => nc.isClosed(),
      maxMessageBytes: await readMessageLimit(nc, jsm, resolved.streamName),
    };
    return new JetStreamEventStore(nc, ctx, resolved);
  }

  get streamName(): string {
    return this.#options.streamName;
  }

  /**
   * The largest message the stream takes, bytes (its max_msg_size or the server's max_payload,
   * whichever is lower), as last read: at start, and again when an append was refused for size.
   */
  get messageLimit(): number {
    return this.#ctx.maxMessageBytes;
  }

  get subjectPrefix(): string {
    return this.#options.subjectPrefix;
  }

  get stats(): Readonly<JetStreamEventStoreStats> {
    return { ...this.#stats };
  }

  async appendToStream(streamId: string, events: NewEvent[], options: AppendOptions): Promise<AppendResult> {
    this.#assertOpen();
    checkNewEvents(streamId, events, options);
    const subject = this.#subjects.events(streamId);
    const { expectedVersion } = options;
    // `options.commands` are not stored: on JetStream the stream itself is the outbox.
    return this.#queues.run(streamId, () => this.#append(streamId, subject, events, expectedVersion));
  }

  async readStream(streamId: string, options: ReadOptions = {}): Promise<ReadResult> {
    const events: DomainEvent[] = [];
    const { currentVersion, exists } = await this.readStreamEach(streamId, options, (event) => events.push(event));
    return { events, currentVersion, exists };
  }

  /** {@link StreamingRead}: each event of the range to `onEvent` as the consumer delivers it. */
  async readStreamEach(
    streamId: string,
    options: ReadOptions,
    onEvent: (event: DomainEvent) => void,
  ): Promise<Omit<ReadResult, 'events'>> {
    this.#assertOpen();
    checkStreamId(streamId);
    checkReadOptions(streamId, options);
    const subject = this.#subjects.events(streamId);
    // What onEvent throws is the caller's (a fold's) error, not the store's: passed on untranslated.
    let thrown: { error: unknown } | undefined;
    const deliver = (event: DomainEvent) => {
      try {
        onEvent(event);
      } catch (error) {
        thrown = { error };
        throw error;
      }
    };
    try {
      return await readSession(this.#ctx, subject, options, deliver);
    } catch (err) {
      if (thrown) throw thrown.error;
      throw translateStoreError(err, this.#options.streamName, streamId, undefined);
    }
  }

  async listStreams(): Promise<string[]> {
    this.#assertOpen();
    try {
      const info = await retryTransient(this.#ctx, () =>
        this.#ctx.jsm.streams.info(this.#options.streamName, { subjects_filter: this.#subjects.allEvents }),
      );
      const found = info.state.subjects ?? {};
      return Object.keys(found)
        .filter((subject) => (found[subject] ?? 0) > 0)
        .map((subject) => this.#subjects.sessionOf(subject))
        .sort();
    } catch (err) {
      throw translateStoreError(err, this.#options.streamName, undefined, undefined);
    }
  }

  /**
   * Every event of every session through one consumer on `<prefix>.ev.>`: exactly the events the
   * stream held at the start of the read (none appended meanwhile; messages removed meanwhile fail
   * it). One consumer for the whole log instead of one per session. Fails as the other reads
   * do: a CorruptLogError for a message that is not an event, a StoreUnavailableError for the rest.
   */
  async *readAll(): AsyncIterable<DomainEvent> {
    this.#assertOpen();
    try {
      yield* readAllEvents(this.#ctx, this.#subjects.allEvents);
    } catch (err) {
      throw translateStoreError(err, this.#options.streamName, undefined, undefined);
    }
  }

  /**
   * {@link LatestEvents}: the last event of every session through one consumer on `<prefix>.ev.>`
   * delivering `last_per_subject` (answered from the server's per-subject index), instead of a
   * `last_by_subj` request per session. Fails as {@link readAll} does.
   */
  async *latestEvents(): AsyncIterable<LatestEvent> {
    this.#assertOpen();
    try {
      yield* readLatestEvents(this.#ctx, this.#subjects.allEvents);
    } catch (err) {
      throw translateStoreError(err, this.#options.streamName, undefined, undefined);
    }
  }

  /** Forgets cached positions. Does not close the connection (the caller owns it). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#ctx.gate.stop();
    this.#ctx.publisher.close();
    this.#positions.clear();
  }

  // ---------------------------------------------------------------------------------------------

  async #append(streamId: string, subject: string, events: NewEvent[], expectedVersion: number | 'any'): Promise<AppendResult> {
    try {
      if (expectedVersion === 'any') return await this.#appendAny(streamId, subject, events);
      let serverRejection: unknown;
      const cached = this.#positions.get(streamId);
      if (cached !== undefined && cached.version === expectedVersion) {
        // Hot path: the cached tip is at the expected version, so publish without a lookup. The
        // server's expected-last-subject-sequence check is what decides.
        this.#stats.cacheHits++;
        try {
          const tip = await this.#publishChain(streamId, subject, events, cached, expectedVersion);
          return { nextExpectedVersion: tip.version };
        } catch (err) {
          // Nothing was written; find out where the session really is (for actualVersion, and
          // in case the cache was wrong rather than the caller).
          if (!(err instanceof FirstEventConflict)) throw err;
          serverRejection = err.conflict.cause;
        }
      }
      const position = await this.#lookup(streamId, subject);
      if (position.version !== expectedVersion) {
        const { landed } = await this.#landed(subject, position, events, alreadyLanded(position, expectedVersion, events));
        if (landed === 0) {
          const cause = serverRejection === undefined ? undefined : { cause: serverRejection };
          throw new ConcurrencyError(streamId, expectedVersion, position.version, cause);
        }
        // A retry of an append whose acks were lost: the first `landed` events are stored at
        // exactly the positions this append would have given them. Carry on after them.
        events = events.slice(landed);
      }
      const tip = await this.#publishChain(streamId, subject, events, position, expectedVersion);
      return { nextExpectedVersion: tip.version };
    } catch (err) {
      throw translateStoreError(err, this.#options.streamName, streamId, expectedVersion);
    }
  }

  async #appendAny(streamId: string, subject: string, events: NewEvent[]): Promise<AppendResult> {
    // 'any' skips the caller's check, but versions must stay contiguous, so a lost race on the
    // first event is retried from a fresh lookup.
    for (let attempt = 0; ; attempt++) {
      const position = await this.#lookup(streamId, subject);
      // A retry of an append whose acks were lost: its events up to the session's tip are stored
      // (the memory and file stores likewise take a repeated append as done).
      const tipAt = position.lastId === undefined ? 0 : events.findIndex((e) => e.id === position.lastId) + 1;
      const { landed, ids } = await this.#landed(subject, position, events, tipAt);
      // The tip is one of them but what precedes it is not: the stores refuse the ids held alike.
      if (landed < tipAt) throw ids ? heldIdError(streamId, ids, events) : storedIdError(streamId, position.lastId!, position.version);
      if (landed === events.length) return { nextExpectedVersion: position.version };
      try {
        const tip = await this.#publishChain(streamId, subject, events.slice(landed), position, position.version);
        return { nextExpectedVersion: tip.version };
      } catch (err) {
        if (!(err instanceof FirstEventConflict) || attempt >= 20) throw err;
        await sleep(Math.min(2 ** attempt, 50));
      }
    }
  }

  /**
   * How many leading `events` landed, when the session's tip is `events[tipAt - 1]` (0: none is).
   * The events before the tip are read and checked too, as the memory and file stores check them,
   * so a retry whose earlier events differ is not carried on. Only a retry has more than the tip to
   * check: a plain append reads nothing here. `ids` are the session's, when they were read.
   */
  async #landed(subject: string, position: Position, events: NewEvent[], tipAt: number): Promise<{ landed: number; ids?: string[] }> {
    if (tipAt === 0) return { landed: 0 };
    if (tipAt === 1) {
      // The tip alone: its content too, which only a read of it tells (the id does not).
      const tip = await storedAt(this.#ctx, position.seq);
      return { landed: tip !== undefined && sameEvent(tip.envelope, events[0]!, position.version) ? 1 : 0 };
    }
    const stored = await storedEvents(this.#ctx, subject, position);
    return { landed: endsWith(stored, events, tipAt) ? tipAt : 0, ids: stored.map((e) => e.id) };
  }

  /** Publishes `events` one by one, each expecting the previous one's stream sequence. */
  async #publishChain(
    streamId: string,
    subject: string,
    events: NewEvent[],
    start: Position,
    expectedVersion: number,
  ): Promise<Position> {
    // Every body before the first publish: an event the stream would refuse fails the append
    // while nothing of it is stored, instead of leaving half a decision.
    const bodies = events.map((event, i) => eventBody(event, start.version + 1 + i));
    await this.#assertFits(streamId, events, bodies, start.seq);
    let tip = start;
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!;
      const version = tip.version + 1;
      let ack: PubAck;
      try {
        ack = await publishEvent(this.#ctx, subject, event, bodies[i]!, tip.seq);
      } catch (err) {
        if (isPermanentPublishError(err)) throw await this.#refused(streamId, event, i, err);
        if (!isWrongLastSequence(err)) throw err;
        this.#positions.delete(streamId);
        this.#stats.serverConflicts++;
        const conflict = new ConcurrencyError(streamId, expectedVersion, undefined, { cause: err });
        // Only a rejected first event means nothing of this append was written.
        throw i === 0 ? new FirstEventConflict(conflict) : conflict;
      }
      if (ack.duplicate) await this.#verifyDuplicate(streamId, subject, event, version, ack.seq, expectedVersion, i);
      tip = { version, seq: ack.seq, lastId: event.id };
      this.#positions.set(streamId, tip);
    }
    return tip;
  }

  /**
   * Throws ValidationError when one of the messages is larger than the stream takes, after reading
   * the limit again (an operator may have raised it since it was last read).
   */
  async #assertFits(streamId: string, events: NewEvent[], bodies: string[], firstSeq: number): Promise<void> {
    if (oversized(events, bodies, firstSeq, this.#ctx.maxMessageBytes) === undefined) return;
    this.#ctx.maxMessageBytes = await readMessageLimit(this.#nc, this.#ctx.jsm, this.#options.streamName);
    const refused = oversized(events, bodies, firstSeq, this.#ctx.maxMessageBytes);
    if (refused === undefined) return;
    throw new ValidationError(
      `session ${streamId}: event ${events[refused.index]!.type} would be a message of ${refused.size} bytes, over the ${this.#ctx.maxMessageBytes} bytes the stream takes (max_msg_size / max_payload); nothing was appended`,
    );
  }

  /**
   * The error for event `i` of an append refused by NATS for its size although the check let it
   * through (the limit was lowered since it was read). With nothing of the append stored, the
   * input is at fault (ValidationError); after part of it, the rest must not be given up on, so
   * it is an outage to retry until the limit is raised.
   */
  async #refused(streamId: string, event: NewEvent, i: number, err: unknown): Promise<Error> {
    this.#ctx.maxMessageBytes = await readMessageLimit(this.#nc, this.#ctx.jsm, this.#options.streamName).catch(() => this.#ctx.maxMessageBytes);
    const what = `session ${streamId}: event ${event.type} refused by NATS (${err instanceof Error ? err.message : String(err)})`;
    return i === 0
      ? new ValidationError(`${what}; nothing was appended`, { cause: err })
      : new StoreUnavailableError(`${what} after ${i} event(s) of the append were stored; retrying until the stream takes it`, { cause: err });
  }

  /**
   * A duplicate ack is success only if the original is this event at this very position. An
   * original on another subject is another session's message with the same id: event ids are
   * message ids here, deduplicated stream-wide, so the caller's ids are at fault, not a conflict.
   */
  async #verifyDuplicate(
    streamId: string,
    subject: string,
    event: NewEvent,
    version: number,
    seq: number,
    expectedVersion: number,
    index: number,
  ): Promise<void> {
    const eventId = event.id;
    const stored = await storedAt(this.#ctx, seq);
    if (stored !== undefined && stored.subject !== subject) {
      const written = index === 0 ? 'nothing was appended' : `${index} event(s) of the append were stored before it`;
      throw new ValidationError(
        `stream ${streamId}: event id ${JSON.stringify(eventId)} is already the message id of stream sequence ${seq} (${stored.subject}); on JetStream event ids are message ids and must be unique across the stream; ${written}`,
      );
    }
    if (stored?.id === eventId && stored.sequence !== version) {
      // The id is an earlier event's of this very session: no retry could clear that either.
      const written = index === 0 ? 'nothing was appended' : `${index} event(s) of the append were stored before it`;
      throw storedIdError(streamId, eventId, stored.sequence, written);
    }
    if (stored?.id !== eventId || stored.sequence !== version) {
      this.#positions.delete(streamId);
      throw new ConcurrencyError(streamId, expectedVersion, undefined, {
        cause: new Error(`event ${eventId} is already stored at stream sequence ${seq}, not as version ${version}`),
      });
    }
    if (!sameEvent(stored.envelope, event, version)) {
      // The same input decided elsewhere (another leader, at another time): its decision stands,
      // and this one must not carry on after it as if its own had landed.
      this.#positions.delete(streamId);
      throw new ConcurrencyError(streamId, expectedVersion, undefined, {
        cause: new Error(`event ${eventId} is already stored at version ${version} with other content: the input was decided elsewhere`),
      });
    }
    this.#stats.duplicates++;
  }

  /** The session's tip from the server (`last_by_subj`), refreshing the cache. */
  async #lookup(streamId: string, subject: string): Promise<Position> {
    this.#stats.lookups++;
    const position = await fetchTip(this.#ctx, subject);
    if (position === undefined) {
      this.#positions.delete(streamId);
      return { version: 0, seq: 0 };
    }
    this.#positions.set(streamId, position);
    return position;
  }

  #assertOpen(): void {
    if (this.#closed) throw new StoreUnavailableError('JetStream event store is closed');
    if (this.#nc.isClosed()) throw new StoreUnavailableError('NATS connection is closed');
  }
}
