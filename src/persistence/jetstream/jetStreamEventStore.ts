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
import {
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  type PubAck,
  type StoredMsg,
} from '@nats-io/jetstream';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import {
  ConcurrencyError,
  CorruptLogError,
  isConcurrencyError,
  isCorruptLogError,
  isStoreUnavailableError,
  isValidationError,
  StoreUnavailableError,
  ValidationError,
} from '../../errors.js';
import { RawEnvelope, type DomainEvent, type NewEvent } from '../../protocol/events.js';
import type { AppendOptions, AppendResult, EventStore, ReadOptions, ReadResult } from '../eventStore.js';
import { HEADER_CAUSATION_ID, HEADER_CORRELATION_ID, HEADER_EVENT_TYPE } from './headers.js';
import {
  ensureStream,
  resolveStreamOptions,
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

/** A session's tip: its version (last event `sequence`) and that message's stream sequence. */
interface Position {
  version: number;
  seq: number;
  /** The id of the event at `version`, when known. */
  lastId?: string;
}

const WRONG_LAST_SEQUENCE = JetStreamApiCodes.StreamWrongLastSequence; // 10071
const decoder = new TextDecoder();
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Headers are informational (the body is the truth): keep them on one line. */
const headerValue = (value: string): string => value.replace(/[\r\n]+/g, ' ');

function isWrongLastSequence(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.code === WRONG_LAST_SEQUENCE;
}

/** A request that may succeed if simply sent again (same msg id, same expectation). */
function isTransient(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  switch (err.name) {
    case 'TimeoutError':
    case 'NoRespondersError':
    case 'JetStreamNotEnabled': // a 503 while the server is (re)starting JetStream
      return true;
    case 'RequestError':
      return (err as Error & { isNoResponders?: () => boolean }).isNoResponders?.() === true;
    default:
      return false;
  }
}

/** The options of a stream that must already exist; a missing one is a clear error. */
async function existingStream(jsm: JetStreamManager, options: JetplanStreamOptions): Promise<ResolvedStreamOptions> {
  const resolved = resolveStreamOptions(options);
  try {
    await jsm.streams.info(resolved.streamName);
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) {
      throw new StoreUnavailableError(`stream ${resolved.streamName} does not exist (start jetplan serve first)`, { cause: err });
    }
    throw err;
  }
  return resolved;
}

export class JetStreamEventStore implements EventStore {
  readonly #nc: NatsConnection;
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  readonly #options: ResolvedStreamOptions;
  readonly #subjects: Subjects;
  readonly #timeout: number;
  readonly #retryFor: number;
  /** Positions of sessions this store has appended to or looked up. A hint, never the guard. */
  readonly #positions = new Map<string, Position>();
  /** Tail of each session's queue of appends in this store. */
  readonly #locks = new Map<string, Promise<void>>();
  readonly #gate: ConnectionGate;
  readonly #stats: JetStreamEventStoreStats = { lookups: 0, cacheHits: 0, duplicates: 0, serverConflicts: 0 };
  #closed = false;

  private constructor(
    nc: NatsConnection,
    js: JetStreamClient,
    jsm: JetStreamManager,
    options: ResolvedStreamOptions,
    timeout: number,
    retryFor: number,
  ) {
    this.#nc = nc;
    this.#js = js;
    this.#jsm = jsm;
    this.#options = options;
    this.#subjects = subjects(options.subjectPrefix);
    this.#timeout = timeout;
    this.#retryFor = retryFor;
    this.#gate = new ConnectionGate(nc);
  }

  /** Ensures the stream exists, then returns a store on it. The caller keeps owning `nc`. */
  static async create(nc: NatsConnection, options: JetStreamEventStoreOptions = {}): Promise<JetStreamEventStore> {
    const timeout = options.requestTimeoutMs ?? 5_000;
    const jsm = await jetstreamManager(nc, { timeout });
    const resolved = options.ensureStream === false ? await existingStream(jsm, options) : await ensureStream(nc, options);
    const js = jetstream(nc, { timeout });
    return new JetStreamEventStore(nc, js, jsm, resolved, timeout, options.retryForMs ?? 15_000);
  }

  get streamName(): string {
    return this.#options.streamName;
  }

  get subjectPrefix(): string {
    return this.#options.subjectPrefix;
  }

  get stats(): Readonly<JetStreamEventStoreStats> {
    return { ...this.#stats };
  }

  async appendToStream(streamId: string, events: NewEvent[], options: AppendOptions): Promise<AppendResult> {
    this.#assertOpen();
    const subject = this.#subjects.events(streamId);
    const { expectedVersion } = options;
    if (expectedVersion !== 'any' && (!Number.isInteger(expectedVersion) || expectedVersion < 0)) {
      throw new ValidationError(
        `stream ${streamId}: expectedVersion must be 'any' or an integer >= 0, got ${expectedVersion}`,
      );
    }
    // `options.commands` are not stored: on JetStream the stream itself is the outbox.
    return this.#serialized(streamId, () => this.#append(streamId, subject, events, expectedVersion));
  }

  async #append(
    streamId: string,
    subject: string,
    events: NewEvent[],
    expectedVersion: number | 'any',
  ): Promise<AppendResult> {
    try {
      if (expectedVersion === 'any') return await this.#appendAny(streamId, subject, events);

      // Hot path: the cached tip is at the expected version, so publish without a lookup. The
      // server's expected-last-subject-sequence check is what decides.
      let serverRejection: unknown;
      const cached = this.#positions.get(streamId);
      if (cached !== undefined && cached.version === expectedVersion) {
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
        const landed = this.#alreadyLanded(position, expectedVersion, events);
        if (landed === 0) {
          throw new ConcurrencyError(
            streamId,
            expectedVersion,
            position.version,
            serverRejection === undefined ? undefined : { cause: serverRejection },
          );
        }
        // A retry of an append whose acks were lost: the first `landed` events are stored at
        // exactly the positions this append would have given them. Carry on after them.
        events = events.slice(landed);
      }
      const tip = await this.#publishChain(streamId, subject, events, position, expectedVersion);
      return { nextExpectedVersion: tip.version };
    } catch (err) {
      throw this.#translate(err, streamId, expectedVersion);
    }
  }

  async readStream(streamId: string, options: ReadOptions = {}): Promise<ReadResult> {
    this.#assertOpen();
    const subject = this.#subjects.events(streamId);
    try {
      const last = await this.#retrying(() => this.#jsm.streams.getMessage(this.#options.streamName, { last_by_subj: subject }));
      if (last === null) return { events: [], currentVersion: 0, exists: false };
      const lastEnvelope = this.#decode(last.data, last.seq);
      const currentVersion = lastEnvelope.sequence;
      const from = Math.max(1, options.from ?? 1);
      const to = Math.min(currentVersion, options.to ?? currentVersion);
      if (from > to) return { events: [], currentVersion, exists: true };
      if (from === currentVersion) {
        // Only the tip is wanted and we already have it.
        return { events: [lastEnvelope as unknown as DomainEvent], currentVersion, exists: true };
      }
      const events = await this.#readRange(subject, last.seq, from, to);
      return { events, currentVersion, exists: true };
    } catch (err) {
      throw this.#translate(err, streamId, undefined);
    }
  }

  async listStreams(): Promise<string[]> {
    this.#assertOpen();
    try {
      const info = await this.#retrying(() =>
        this.#jsm.streams.info(this.#options.streamName, { subjects_filter: this.#subjects.allEvents }),
      );
      const found = info.state.subjects ?? {};
      return Object.keys(found)
        .filter((subject) => (found[subject] ?? 0) > 0)
        .map((subject) => this.#subjects.sessionOf(subject))
        .sort();
    } catch (err) {
      throw this.#translate(err, undefined, undefined);
    }
  }

  /**
   * Every event of every session through one ordered consumer on `<prefix>.ev.>`, up to the
   * stream's last event at the start of the read (events appended meanwhile may or may not be
   * included). One consumer for the whole log instead of one per session.
   */
  async *readAll(): AsyncIterable<DomainEvent> {
    this.#assertOpen();
    await this.#gate.ready(this.#retryFor);
    const consumer = await this.#js.consumers.get(this.#options.streamName, {
      filter_subjects: this.#subjects.allEvents,
      deliver_policy: DeliverPolicy.All,
      inactive_threshold: 30_000,
    });
    try {
      if ((await consumer.info(true)).num_pending === 0) return;
      const messages = await consumer.consume({ max_messages: 4_096 });
      try {
        for await (const m of messages) {
          yield this.#decode(m.data, m.seq) as unknown as DomainEvent;
          if (m.info.pending === 0) break;
        }
      } finally {
        await messages.close().catch(() => undefined);
      }
    } finally {
      consumer.delete().catch(() => undefined);
    }
  }

  /** Forgets cached positions. Does not close the connection (the caller owns it). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#gate.stop();
    this.#positions.clear();
  }

  // ---------------------------------------------------------------------------------------------

  /**
   * Runs appends to one session one at a time within this store, so this process never interleaves
   * two multi-event appends (which 'any' would otherwise allow) and a loser fails on its cache
   * check. Other sessions' appends run concurrently; other processes are guarded by the server.
   */
  async #serialized<T>(streamId: string, work: () => Promise<T>): Promise<T> {
    const previous = this.#locks.get(streamId) ?? Promise.resolve();
    const run = previous.then(work, work);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.#locks.set(streamId, tail);
    try {
      return await run;
    } finally {
      if (this.#locks.get(streamId) === tail) this.#locks.delete(streamId);
    }
  }

  async #appendAny(streamId: string, subject: string, events: NewEvent[]): Promise<AppendResult> {
    // 'any' skips the caller's check, but versions must stay contiguous, so a lost race on the
    // first event is retried from a fresh lookup.
    for (let attempt = 0; ; attempt++) {
      const position = await this.#lookup(streamId, subject);
      try {
        const tip = await this.#publishChain(streamId, subject, events, position, position.version);
        return { nextExpectedVersion: tip.version };
      } catch (err) {
        if (!(err instanceof FirstEventConflict) || attempt >= 20) throw err;
        await sleep(Math.min(2 ** attempt, 50));
      }
    }
  }

  /**
   * How many leading `events` are already stored right after `expectedVersion` (a retry after a
   * lost ack). Only the tip's id is known without reading, so it matches when the stored tip is
   * one of `events` at the position this append would have given it.
   */
  #alreadyLanded(position: Position, expectedVersion: number, events: NewEvent[]): number {
    const landed = position.version - expectedVersion;
    if (landed < 1 || landed > events.length || position.lastId === undefined) return 0;
    return events[landed - 1]?.id === position.lastId ? landed : 0;
  }

  /** Publishes `events` one by one, each expecting the previous one's stream sequence. */
  async #publishChain(
    streamId: string,
    subject: string,
    events: NewEvent[],
    start: Position,
    expectedVersion: number,
  ): Promise<Position> {
    let tip = start;
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!;
      const version = tip.version + 1;
      const body = JSON.stringify({ ...event, sequence: version });
      const h = natsHeaders();
      h.set(HEADER_EVENT_TYPE, headerValue(event.type));
      h.set(HEADER_CORRELATION_ID, headerValue(event.correlationId));
      h.set(HEADER_CAUSATION_ID, headerValue(event.causationId));
      let ack: PubAck;
      try {
        ack = await this.#retrying(() =>
          this.#js.publish(subject, body, {
            msgID: event.id,
            expect: { lastSubjectSequence: tip.seq },
            headers: h,
            timeout: this.#timeout,
          }),
        );
      } catch (err) {
        if (isWrongLastSequence(err)) {
          this.#positions.delete(streamId);
          this.#stats.serverConflicts++;
          const conflict = new ConcurrencyError(streamId, expectedVersion, undefined, { cause: err });
          throw i === 0 ? new FirstEventConflict(conflict) : conflict;
        }
        throw err;
      }
      if (ack.duplicate) await this.#verifyDuplicate(streamId, subject, event.id, version, ack.seq, expectedVersion);
      tip = { version, seq: ack.seq, lastId: event.id };
      this.#positions.set(streamId, tip);
    }
    return tip;
  }

  /** A duplicate ack is success only if the original is this event at this very position. */
  async #verifyDuplicate(
    streamId: string,
    subject: string,
    eventId: string,
    version: number,
    seq: number,
    expectedVersion: number,
  ): Promise<void> {
    const stored = await this.#retrying(() => this.#jsm.streams.getMessage(this.#options.streamName, { seq }));
    const envelope = stored === null ? undefined : this.#decode(stored.data, seq);
    if (stored?.subject !== subject || envelope?.id !== eventId || envelope.sequence !== version) {
      this.#positions.delete(streamId);
      throw new ConcurrencyError(streamId, expectedVersion, undefined, {
        cause: new Error(`event ${eventId} is already stored at stream sequence ${seq}, not as version ${version}`),
      });
    }
    this.#stats.duplicates++;
  }

  /** The session's tip from the server (`last_by_subj`). */
  async #lookup(streamId: string, subject: string): Promise<Position> {
    this.#stats.lookups++;
    const last: StoredMsg | null = await this.#retrying(() =>
      this.#jsm.streams.getMessage(this.#options.streamName, { last_by_subj: subject }),
    );
    if (last === null) {
      this.#positions.delete(streamId);
      return { version: 0, seq: 0 };
    }
    const envelope = this.#decode(last.data, last.seq);
    const position = { version: envelope.sequence, seq: last.seq, lastId: envelope.id };
    this.#positions.set(streamId, position);
    return position;
  }

  /** Reads the session's events `from..to` with an ordered consumer, up to stream seq `lastSeq`. */
  async #readRange(subject: string, lastSeq: number, from: number, to: number): Promise<DomainEvent[]> {
    await this.#gate.ready(this.#retryFor);
    const consumer = await this.#js.consumers.get(this.#options.streamName, {
      filter_subjects: subject, // a string: a single filter_subject, which 2.9 understands
      deliver_policy: DeliverPolicy.All,
      inactive_threshold: 30_000,
    });
    const wanted = to - from + 1;
    const events: DomainEvent[] = [];
    const messages = await consumer.consume({ max_messages: Math.min(Math.max(to, 64), 4_096) });
    let expected = 1;
    try {
      for await (const m of messages) {
        const envelope = this.#decode(m.data, m.seq);
        if (envelope.sequence !== expected) {
          throw new CorruptLogError(
            `session subject ${subject}: expected event ${expected} at stream sequence ${m.seq}, found ${envelope.sequence}`,
          );
        }
        expected++;
        if (envelope.sequence >= from) events.push(envelope as unknown as DomainEvent);
        if (envelope.sequence >= to || m.seq >= lastSeq) break;
      }
    } finally {
      await messages.close().catch(() => undefined);
      consumer.delete().catch(() => undefined);
    }
    if (events.length !== wanted) {
      throw new CorruptLogError(`session subject ${subject}: read ${events.length} events, expected ${wanted}`);
    }
    return events;
  }

  #decode(data: Uint8Array, seq: number): RawEnvelope {
    let json: unknown;
    try {
      json = JSON.parse(decoder.decode(data));
    } catch (err) {
      throw new CorruptLogError(`stream ${this.#options.streamName} seq ${seq}: not JSON`, { cause: err });
    }
    const parsed = RawEnvelope.safeParse(json);
    if (!parsed.success) {
      throw new CorruptLogError(`stream ${this.#options.streamName} seq ${seq}: not an event envelope`, {
        cause: parsed.error,
      });
    }
    return parsed.data;
  }

  /** Runs a request, resending it while it times out or finds no responder (server restarting). */
  async #retrying<T>(request: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.#retryFor;
    for (let attempt = 0; ; attempt++) {
      await this.#gate.ready(Math.max(0, deadline - Date.now()));
      try {
        return await request();
      } catch (err) {
        if (!isTransient(err) || Date.now() >= deadline || this.#nc.isClosed()) throw err;
        await sleep(Math.min(25 * 2 ** attempt, 500));
      }
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw new StoreUnavailableError('JetStream event store is closed');
    if (this.#nc.isClosed()) throw new StoreUnavailableError('NATS connection is closed');
  }

  #translate(err: unknown, streamId: string | undefined, expectedVersion: number | 'any' | undefined): Error {
    if (err instanceof FirstEventConflict) return err.conflict;
    if (isConcurrencyError(err) || isValidationError(err) || isCorruptLogError(err)) return err;
    if (isStoreUnavailableError(err)) return err;
    if (isWrongLastSequence(err) && streamId !== undefined && typeof expectedVersion === 'number') {
      return new ConcurrencyError(streamId, expectedVersion, undefined, { cause: err });
    }
    const message = err instanceof Error ? err.message : String(err);
    return new StoreUnavailableError(
      `JetStream ${this.#options.streamName}${streamId === undefined ? '' : ` (session ${streamId})`}: ${message}`,
      { cause: err },
    );
  }
}

/**
 * Tracks whether the connection is up. nats.js drops what is published between a disconnect and
 * the reconnect (the pending buffer is reset), so a request sent in that window only fails by
 * timing out; waiting for the reconnect first avoids that.
 */
class ConnectionGate {
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

  stop(): void {
    void this.#iterator.return?.();
    this.#open();
  }
}

/** Internal: the server rejected the first event of an append (nothing was written). */
class FirstEventConflict extends Error {
  constructor(readonly conflict: ConcurrencyError) {
    super(conflict.message, { cause: conflict });
  }
}
