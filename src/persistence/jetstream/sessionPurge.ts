/**
 * The broker side of removing whole sessions from a deployment: what `jetplan purge` deletes on
 * the stream and in the snapshot bucket. Which sessions may go is decided elsewhere (only ended
 * ones); this only knows subjects, the input consumer's ack floor and the bucket's stream.
 */
import { JetStreamApiCodes, JetStreamApiError, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { translateStoreError } from './jetStreamErrors.js';

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
}

/** What one session's purge removed. */
export interface SessionPurged {
  /** Messages removed from the stream: events, the inputs already processed, commands. */
  messages: number;
  /** Snapshot values removed (0 or 1, or more for a bucket that keeps history). */
  snapshots: number;
  /** Executor inbox and claim entries removed. */
  dispatchEntries: number;
}

const isNotFound = (err: unknown, code: number): boolean => err instanceof JetStreamApiError && err.code === code;

/**
 * Removes sessions' messages from a JetStream deployment. Inputs are removed only up to the input
 * consumer's ack floor: an input the service has not yet acknowledged is kept, so it is still
 * processed (and answered) rather than lost. Failures are StoreUnavailableErrors and are not
 * retried here: every step is idempotent, so the caller runs the purge again.
 */
export class SessionPurger {
  readonly #jsm: JetStreamManager;
  readonly #target: PurgeTarget;

  private constructor(jsm: JetStreamManager, target: PurgeTarget) {
    this.#jsm = jsm;
    this.#target = target;
  }

  static async create(nc: NatsConnection, target: PurgeTarget): Promise<SessionPurger> {
    return new SessionPurger(await jetstreamManager(nc), target);
  }

  /**
   * The stream sequence up to which the service has acknowledged every input (its consumer's ack
   * floor), read now; 0 when it has no consumer (nothing is known to be processed).
   */
  async inputsProcessedThrough(): Promise<number> {
    try {
      const info = await this.#jsm.consumers.info(this.#target.streamName, this.#target.inputConsumer);
      return info.ack_floor.stream_seq;
    } catch (err) {
      if (isNotFound(err, JetStreamApiCodes.ConsumerNotFound)) return 0;
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
   * Removes one session: its snapshot and executor entries first (so none outlives its log), then
   * its processed inputs (stream sequence at most `inputsThrough`), its commands, and its events
   * last, so an interrupted purge leaves a session still listed as ended, purged by a rerun.
   */
  async purge(sessionId: string, inputsThrough: number): Promise<SessionPurged> {
    const { streamName, subjectPrefix: p } = this.#target;
    try {
      const snapshots = await this.#purgeKey(this.#target.snapshotBucket, sessionId);
      let dispatchEntries = 0;
      // Dispatch ids are `<sessionId>.<…>`: one wildcard filter takes all of a session's keys.
      for (const bucket of this.#target.dispatchBuckets) dispatchEntries += await this.#purgeKey(bucket, `${sessionId}.>`);
      let messages = 0;
      // `seq`: purge up to but not including it.
      if (inputsThrough > 0) messages += await this.#purgeSubject(streamName, `${p}.in.${sessionId}`, inputsThrough + 1);
      // Two subjects, not `exec.*.<id>`: one filter subject per request is all nats-server 2.9 is sure to take.
      messages += await this.#purgeSubject(streamName, `${p}.exec.toolcall.${sessionId}`);
      messages += await this.#purgeSubject(streamName, `${p}.exec.processing.${sessionId}`);
      messages += await this.#purgeSubject(streamName, `${p}.ev.${sessionId}`);
      return { messages, snapshots, dispatchEntries };
    } catch (err) {
      throw translateStoreError(err, streamName, sessionId, undefined);
    }
  }

  async #purgeSubject(stream: string, filter: string, seq?: number): Promise<number> {
    const options = seq === undefined ? { filter } : { filter, seq };
    return (await this.#jsm.streams.purge(stream, options)).purged;
  }

  /** Purges `key` (a subject filter) from a KV bucket's stream: no delete marker is left behind. */
  async #purgeKey(bucket: string, key: string): Promise<number> {
    try {
      return await this.#purgeSubject(`KV_${bucket}`, `$KV.${bucket}.${key}`);
    } catch (err) {
      if (isNotFound(err, JetStreamApiCodes.StreamNotFound)) return 0; // no such bucket: nothing kept there
      throw err;
    }
  }
}
