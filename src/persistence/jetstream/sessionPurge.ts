/**
 * The broker side of removing whole sessions from a deployment: what `jetplan purge` deletes on
 * the stream and in the KV buckets. Which sessions may go is decided elsewhere (only ended ones);
 * this only knows subjects, the input consumer's ack floor and the buckets' streams.
 *
 * Messages are deleted one by one, by stream sequence, never by a purge with a subject filter: on
 * nats-server 2.9.10 such a purge moves every consumer whose filter covers the purged subject past
 * the messages before the purged subject's first survivor, of every session. The service's input
 * consumer and the executors' then skipped other sessions' pending inputs and commands for good
 * (nats-server fixed it later, in PR #3838). A deleted message is simply not delivered.
 */
import { JetStreamApiCodes, JetStreamApiError, jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { ConnectionGate } from './connectionGate.js';
import { translateStoreError } from './jetStreamErrors.js';
import { decodeEnvelope } from './jetStreamReads.js';
import { PullRead, type PullReadOptions, type ReadContext } from './pullRead.js';

/** Where a deployment keeps a session: its stream and subject prefix, its snapshots, its input consumer. */
export interface PurgeTarget {
  streamName: string;
  subjectPrefix: string;
  /** The KV bucket of the service's snapshots (`plannerNames(...).snapshotBucket`). */
  snapshotBucket: string;
  /** The planner service's durable input consumer (`plannerNames(...).durableName`). */
  inputConsumer: string;
  /**
   * The executors' KV buckets keyed by dispatch id (`<sessionId>.…`): their report inbox and claims
   * (`executorNames(...)`). A session's entries there go with it.
   */
  dispatchBuckets: string[];
  /**
   * The session a key of the dispatch buckets belongs to, or undefined (default: the key up to its
   * first dot). The executors encode a dispatch id that is not a valid key (`x.<base64url>`): only
   * they know how to read it back.
   */
  sessionOfDispatchKey?: (key: string) => string | undefined;
}

/** The key up to its first dot: a dispatch id is `<sessionId>.<…>`. */
export const sessionBeforeDot = (key: string): string | undefined => (key.includes('.') ? key.slice(0, key.indexOf('.')) : undefined);

/** What a purge removed. */
export interface SessionsPurged {
  /** Messages removed from the stream: events, the inputs already processed, commands. */
  messages: number;
  /** Snapshot values removed. */
  snapshots: number;
  /** Executor inbox and claim entries removed. */
  dispatchEntries: number;
}

/** Deletes sent at once. */
const DELETE_CONCURRENCY = 32;

const isApiError = (err: unknown, code: number): boolean => err instanceof JetStreamApiError && err.code === code;

/**
 * Removes sessions' messages from a JetStream deployment. Inputs are removed only up to the input
 * consumer's ack floor: an input the service has not yet acknowledged is kept, so it is still
 * processed (and answered) rather than lost. Failures are StoreUnavailableErrors and are not
 * retried here: every step is idempotent, so the caller runs the purge again.
 */
export class SessionPurger {
  readonly #nc: NatsConnection;
  readonly #jsm: JetStreamManager;
  readonly #target: PurgeTarget;
  readonly #gate: ConnectionGate;

  private constructor(nc: NatsConnection, jsm: JetStreamManager, target: PurgeTarget) {
    this.#nc = nc;
    this.#jsm = jsm;
    this.#target = target;
    this.#gate = new ConnectionGate(nc);
  }

  /** `jsm`: the JetStream manager to use (default one on `nc`; tests pass one that interleaves writes). */
  static async create(nc: NatsConnection, target: PurgeTarget, jsm?: JetStreamManager): Promise<SessionPurger> {
    return new SessionPurger(nc, jsm ?? (await jetstreamManager(nc)), target);
  }

  /**
   * The stream sequence up to which the service has acknowledged every input (its consumer's ack
   * floor), read now; 0 when it has no consumer (nothing is known to be processed).
   */
  async inputsProcessedThrough(): Promise<number> {
    try {
      return (await this.#jsm.consumers.info(this.#target.streamName, this.#target.inputConsumer)).ack_floor.stream_seq;
    } catch (err) {
      if (isApiError(err, JetStreamApiCodes.ConsumerNotFound)) return 0;
      throw translateStoreError(err, this.#target.streamName, undefined, undefined);
    }
  }

  /** The stream's duplicate window, ms: how long JetStream remembers a message id. */
  async duplicateWindowMs(): Promise<number> {
    try {
      return Math.ceil((await this.#jsm.streams.info(this.#target.streamName)).config.duplicate_window / 1e6);
    } catch (err) {
      throw translateStoreError(err, this.#target.streamName, undefined, undefined);
    }
  }

  /**
   * Removes the sessions `ids`: their snapshots and executor entries first (so none outlives its
   * log), then their processed inputs (stream sequence at most `inputsThrough`) and commands, and
   * their events last, oldest first, so an interrupted purge leaves sessions whose latest event
   * still ends them, which a rerun finds and finishes. One headers-only scan of each stream finds
   * the messages; events appended to the sessions during the purge are then dealt with (see
   * #deleteOrphans).
   */
  async purge(ids: readonly string[], inputsThrough: number): Promise<SessionsPurged> {
    const wanted = new Set(ids);
    const { streamName, subjectPrefix: p } = this.#target;
    try {
      const snapshots = await this.#deleteKeys(this.#target.snapshotBucket, (key) => wanted.has(key));
      let dispatchEntries = 0;
      const sessionOf = this.#target.sessionOfDispatchKey ?? sessionBeforeDot;
      for (const bucket of this.#target.dispatchBuckets) {
        dispatchEntries += await this.#deleteKeys(bucket, (key) => {
          const id = sessionOf(key);
          return id !== undefined && wanted.has(id);
        });
      }
      const work: number[] = [];
      const events: number[] = [];
      // Inputs not yet acknowledged when the purge began: removed at the end if processed by then.
      const laterInputs = new Set<number>();
      const scannedTo = await this.#lastSeq(streamName);
      await this.#scan(streamName, `${p}.>`, (subject, seq) => {
        const [kind, ...rest] = subject.slice(p.length + 1).split('.');
        const id = rest.at(-1) ?? '';
        if (!wanted.has(id)) return;
        if (kind === 'ev' && rest.length === 1) events.push(seq);
        else if (kind === 'exec' && rest.length === 2) work.push(seq);
        else if (kind === 'in' && rest.length === 1) (seq <= inputsThrough ? work.push(seq) : laterInputs.add(seq));
      });
      let messages = await this.#delete(streamName, work);
      messages += await this.#delete(streamName, events);
      messages += await this.#deleteOrphans(wanted, scannedTo);
      messages += await this.#deleteProcessed(wanted, scannedTo, laterInputs);
      return { messages, snapshots, dispatchEntries };
    } catch (err) {
      throw translateStoreError(err, streamName, undefined, undefined);
    }
  }

  /**
   * Deletes the events of the purged sessions appended after the scan (whose stream sequence is
   * past `scannedTo`) that continue a removed log: the answer to an input that reached an ended
   * session during the purge. Left alone, such an event would be a log that no longer starts at 1,
   * unreadable, under an id that a later input may use again. Events of a new run (a log started
   * again at 1 once the old one was gone) stay. Repeated while a pass finds some (at most 5), each
   * pass from the first scan's end: the orphans deleted are gone, so a new run is seen from its
   * first event whenever it began.
   */
  async #deleteOrphans(wanted: ReadonlySet<string>, scannedTo: number): Promise<number> {
    const { streamName, subjectPrefix: p } = this.#target;
    let deleted = 0;
    for (let pass = 0; pass < 5; pass++) {
      if ((await this.#lastSeq(streamName)) <= scannedTo) return deleted;
      const later = new Map<string, Array<{ seq: number; version: number }>>();
      await this.#scan(streamName, `${p}.ev.>`, (subject, seq, data) => {
        const id = subject.slice(p.length + 4);
        if (!wanted.has(id)) return;
        const version = decodeEnvelope(streamName, data, seq).sequence;
        later.set(id, [...(later.get(id) ?? []), { seq, version }]);
      }, { fromSeq: scannedTo + 1, headersOnly: false });
      const orphans = [...later.values()].filter((list) => list[0]!.version > 1).flat().map((m) => m.seq);
      if (orphans.length === 0) return deleted;
      deleted += await this.#delete(streamName, orphans);
    }
    return deleted;
  }

  /**
   * Deletes those of `inputs` (the purged sessions' inputs the service had not acknowledged when
   * the purge began, or that came during it) that it has acknowledged by now: their answers went
   * with the sessions, and left in the stream they would be applied again to the id, starting a
   * session from a stale SubmitInput, should the input consumer ever be made again from the
   * stream's start. Those still unacknowledged stay, to be processed.
   */
  async #deleteProcessed(wanted: ReadonlySet<string>, scannedTo: number, inputs: Set<number>): Promise<number> {
    const p = this.#target.subjectPrefix;
    // Those that came after the first scan, up to now (during the deletes and orphan passes too).
    if ((await this.#lastSeq(this.#target.streamName)) > scannedTo) {
      await this.#scan(this.#target.streamName, `${p}.in.>`, (subject, seq) => {
        if (wanted.has(subject.slice(p.length + 4))) inputs.add(seq);
      }, { fromSeq: scannedTo + 1, headersOnly: true });
    }
    if (inputs.size === 0) return 0;
    const floor = await this.inputsProcessedThrough();
    return this.#delete(this.#target.streamName, [...inputs].filter((seq) => seq <= floor).sort((a, b) => a - b));
  }

  /**
   * Whether the log of session `id` was cut at the front: its first event is not version 1. Only a
   * purge that did not finish leaves one (it deletes oldest first; the stream has no limits), so a
   * rerun removes the rest rather than failing on it.
   */
  async cutAtFront(id: string): Promise<boolean> {
    let first: number | undefined;
    try {
      await this.#scan(this.#target.streamName, `${this.#target.subjectPrefix}.ev.${id}`, (_subject, seq, data) => {
        first ??= decodeEnvelope(this.#target.streamName, data, seq).sequence;
      }, { most: 1, headersOnly: false });
    } catch (err) {
      throw translateStoreError(err, this.#target.streamName, id, undefined);
    }
    return first !== undefined && first > 1;
  }

  /** The stream's last sequence now (0 when empty). */
  async #lastSeq(stream: string): Promise<number> {
    return (await this.#jsm.streams.info(stream)).state.last_seq;
  }

  /** Stops watching the connection. */
  close(): void {
    this.#gate.stop();
  }

  /** Deletes the keys of `bucket` that `matches` takes; 0 if there is no such bucket. */
  async #deleteKeys(bucket: string, matches: (key: string) => boolean): Promise<number> {
    const stream = `KV_${bucket}`;
    const prefix = `$KV.${bucket}.`;
    const seqs: number[] = [];
    try {
      await this.#scan(stream, `${prefix}>`, (subject, seq) => {
        if (matches(subject.slice(prefix.length))) seqs.push(seq);
      });
    } catch (err) {
      if (isApiError(err, JetStreamApiCodes.StreamNotFound)) return 0; // nothing kept there
      throw err;
    }
    return this.#delete(stream, seqs);
  }

  /** Every message on `filter` of `stream` now (headers only by default): its subject, sequence and body, to `each`. */
  async #scan(stream: string, filter: string, each: (subject: string, seq: number, data: Uint8Array) => void, options: PullReadOptions = { headersOnly: true }): Promise<void> {
    const ctx: ReadContext = { nc: this.#nc, js: jetstream(this.#nc), jsm: this.#jsm, gate: this.#gate, streamName: stream, retryForMs: 10_000 };
    const read = await PullRead.open(ctx, filter, options);
    try {
      for (let batch = await read.take(); batch.length > 0; batch = await read.take()) {
        for (const m of batch) each(m.msg.subject, m.seq, m.data);
      }
    } finally {
      read.close();
    }
  }

  /** Deletes the messages `seqs` of `stream`, in order, DELETE_CONCURRENCY at a time; how many it deleted. */
  async #delete(stream: string, seqs: readonly number[]): Promise<number> {
    let deleted = 0;
    for (let i = 0; i < seqs.length; i += DELETE_CONCURRENCY) {
      const done = await Promise.all(seqs.slice(i, i + DELETE_CONCURRENCY).map((seq) => this.#deleteOne(stream, seq)));
      deleted += done.filter(Boolean).length;
    }
    return deleted;
  }

  async #deleteOne(stream: string, seq: number): Promise<boolean> {
    try {
      return await this.#jsm.streams.deleteMessage(stream, seq, false);
    } catch (err) {
      if (isApiError(err, JetStreamApiCodes.NoMessageFound)) return false; // gone already (a rerun)
      throw err;
    }
  }
}
