/**
 * Retention for a NATS deployment: removes whole sessions that ended long enough ago, so the stream
 * (which has no limits: a cut log would be corrupt) and a new leader's recovery stop growing with
 * every session ever run. Only ended sessions go; open ones, and ended ones with recent activity,
 * stay. What a removal deletes, and in which order, is SessionPurger's (src/persistence/jetstream).
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { endedSessions, type NeverStarted } from '../actors/endedSessions.js';
import { isConcurrencyError, ValidationError } from '../errors.js';
import { EVENT_SCHEMA_VERSION, type NewEvent } from '../protocol/events.js';
import { JetStreamEventStore } from '../persistence/jetstream/jetStreamEventStore.js';
import { SessionPurger, sessionBeforeDot } from '../persistence/jetstream/sessionPurge.js';
import { DEFAULT_STREAM_NAME, DEFAULT_SUBJECT_PREFIX } from '../persistence/jetstream/streamConfig.js';
import { executorNames, plannerNames } from '../protocol/deploymentNames.js';
import { checkConnectionOption } from '../shared/optionChecks.js';
import { dispatchIdOfKey } from './executorInbox.js';

/** Options of {@link purgeEndedSessions}. */
export interface PurgeOptions {
  streamName?: string;
  subjectPrefix?: string;
  /** Only sessions whose last event is at least this old, ms: a whole number of at least 0. */
  olderThanMs: number;
  /** Find the sessions that would go and remove nothing (default false). */
  dryRun?: boolean;
  /** The time ages are measured from, ms since the epoch (default now). */
  now?: number;
}

/** What a purge removed (with `dryRun`: would remove) and what it kept. */
export interface PurgeResult {
  /** The sessions removed, in id order. */
  sessions: string[];
  /** Stream messages removed: events, processed inputs, commands (0 with `dryRun`). */
  messages: number;
  /** Snapshot values removed (0 with `dryRun`). */
  snapshots: number;
  /** Entries of the executors' report inbox and claims removed (0 with `dryRun`). */
  dispatchEntries: number;
  /** Ended sessions kept: their last event is more recent than `olderThanMs`. */
  recent: number;
  /** Sessions kept because they have not ended (open, or never started). */
  open: number;
}

/**
 * Removes every session of the deployment that has ended (or never started: every input rejected)
 * and whose last event is at least
 * `olderThanMs` old, and older than the stream's duplicate window: its events, its commands, its
 * inputs the service has processed, its snapshot, and its entries in the executors' default report
 * inbox and claims buckets. A later input under a removed id starts a new session. Safe to run while the service
 * runs and to run again after an interruption (each removal is idempotent).
 * @throws ValidationError for a bad option; StoreUnavailableError when NATS fails (run it again).
 */
export async function purgeEndedSessions(nc: NatsConnection, o: PurgeOptions): Promise<PurgeResult> {
  checkConnectionOption('nc', nc);
  if (!Number.isSafeInteger(o.olderThanMs) || o.olderThanMs < 0) {
    throw new ValidationError(`olderThanMs must be a whole number of milliseconds of at least 0, got ${String(o.olderThanMs)}`);
  }
  const streamName = o.streamName ?? DEFAULT_STREAM_NAME;
  const subjectPrefix = o.subjectPrefix ?? DEFAULT_SUBJECT_PREFIX;
  const { durableName, snapshotBucket } = plannerNames(streamName, subjectPrefix);
  const store = await JetStreamEventStore.create(nc, { streamName, subjectPrefix, ensureStream: false });
  try {
    const { inboxBucket, claimsBucket } = executorNames(streamName, subjectPrefix);
    const purger = await SessionPurger.create(nc, {
      streamName, subjectPrefix, snapshotBucket, inputConsumer: durableName, dispatchBuckets: [inboxBucket, claimsBucket],
      sessionOfDispatchKey: (key) => sessionBeforeDot(dispatchIdOfKey(key)),
    });
    try {
      // Read before the scan: an input acknowledged later is kept, never one still to be processed.
      const inputsThrough = await purger.inputsProcessedThrough();
      // Never younger than the duplicate window: JetStream still remembers the session's message ids
      // (dispatch ids, `report.…`), and a new session under the id could have its messages dropped.
      const minAgeMs = Math.max(o.olderThanMs, await purger.duplicateWindowMs());
      const found = await endedSessions(store, (o.now ?? Date.now()) - minAgeMs, { cutAtFront: (id) => purger.cutAtFront(id) });
      let { ids, open } = found;
      if (!o.dryRun) {
        const started = await fenceNeverStarted(store, found.neverStarted);
        ids = ids.filter((id) => !started.has(id));
        open += started.size;
      }
      const result: PurgeResult = { sessions: ids, messages: 0, snapshots: 0, dispatchEntries: 0, recent: found.recent, open };
      if (!o.dryRun && ids.length > 0) Object.assign(result, await purger.purge(ids, inputsThrough));
      return result;
    } finally {
      purger.close();
    }
  } finally {
    await store.close();
  }
}

/**
 * Ends each session that never started with a SessionCancelled at the version it was seen at, before
 * anything of it is deleted. Unlike an ended session, one that never started still takes a
 * SubmitInput, which a running service could apply between the scan and the deletes: its new run
 * would then be deleted with the old log. Appended at the expected version, the cancel either
 * lands first (the service's append then conflicts, and it rejects the input as it would for any
 * ended session) or fails because the session moved, and that session is kept. Dated at the
 * session's last activity so that an interrupted purge's rerun still finds it old enough. The ids
 * of the sessions that moved are returned.
 */
async function fenceNeverStarted(store: JetStreamEventStore, sessions: readonly NeverStarted[]): Promise<Set<string>> {
  const moved = new Set<string>();
  for (const { id, version, timestamp } of sessions) {
    const causationId = `purge.${id}.${version}`;
    const fence: NewEvent = {
      id: `${causationId}/${version + 1}`,
      type: 'SessionCancelled',
      version: EVENT_SCHEMA_VERSION,
      sessionId: id,
      timestamp,
      causationId,
      correlationId: id,
      data: { reason: 'purged: the session never started (every input was rejected)' },
    };
    try {
      await store.appendToStream(id, [fence], { expectedVersion: version });
    } catch (err) {
      if (!isConcurrencyError(err)) throw err;
      moved.add(id);
    }
  }
  return moved;
}
