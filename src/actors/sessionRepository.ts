import { aggregateStream, type EventStore, type ReadOptions } from '../persistence/eventStore.js';
import type { DomainEvent } from '../protocol/events.js';
import { toCurrentEvent } from '../protocol/upcasters.js';
import { statusOf } from '../machines/sessionQueries.js';
import { checkIntegerOption } from '../shared/optionChecks.js';
import type { SnapshotStore } from '../persistence/snapshotStore.js';
import {
  STATE_SCHEMA,
  SessionFold,
  initialSessionState,
  restoreState,
  serializeState,
  type SessionState,
} from '../machines/sessionState.js';

/** Statuses after which a session takes no more work: not kept in memory. */
const ENDED = new Set(['completed', 'failed', 'cancelled']);

/** Options of {@link SessionRepository}. */
export interface SessionRepositoryOptions {
  store: EventStore;
  snapshots?: SnapshotStore;
  /**
   * Save a snapshot each time a session's version crosses a multiple of this: a positive integer
   * (default 100). To go without snapshots, leave out `snapshots`.
   */
  snapshotEvery?: number;
  /**
   * How many open sessions to keep folded in memory: a positive integer (default 10,000). An
   * ended session is not kept.
   */
  cacheSize?: number;
}

/**
 * Loads sessions as snapshot plus tail and keeps recent ones in memory. The log is the truth: a
 * snapshot is a cache, ignored when its schema is old or it is ahead of the log.
 */
export class SessionRepository {
  private readonly cache = new Map<string, SessionState>();
  /** The version at which each recently ended session ended: what a stale load must not undo. */
  private readonly endedAt = new Map<string, number>();
  private readonly every: number;
  private readonly cacheSize: number;

  /** @throws ValidationError when `snapshotEvery` or `cacheSize` is not a positive integer. */
  constructor(private readonly options: SessionRepositoryOptions) {
    // 0, a negative or NaN would not fail but quietly change what happens: no snapshots at all,
    // or a cache that keeps nothing or is never trimmed.
    checkIntegerOption('snapshotEvery', options.snapshotEvery, 1);
    checkIntegerOption('cacheSize', options.cacheSize, 1);
    this.every = options.snapshotEvery ?? 100;
    this.cacheSize = options.cacheSize ?? 10_000;
  }

  /** The session's current state: from memory, else snapshot plus the events after it. */
  async load(sessionId: string): Promise<SessionState> {
    const cached = this.cache.get(sessionId);
    if (cached) {
      this.remember(cached); // most recently used: evicted last
      return cached;
    }
    const state = (await this.fromSnapshot(sessionId)) ?? (await this.foldOnto(initialSessionState(sessionId), {})).state;
    this.remember(state);
    return state;
  }

  /** Rebuilds from the log alone, ignoring snapshots and memory (replay). */
  async rebuild(sessionId: string, until?: number): Promise<{ state: SessionState; exists: boolean }> {
    return this.foldOnto(initialSessionState(sessionId), until === undefined ? {} : { to: until });
  }

  /** Folds the session's events in `range`, upcast, onto `start` as the store reads them. */
  private async foldOnto(start: SessionState, range: { from?: number; to?: number }): Promise<{ state: SessionState; exists: boolean }> {
    const where = `session ${start.sessionId}`;
    const { state, exists } = await aggregateStream(this.options.store, start.sessionId, {
      initialState: () => new SessionFold(start),
      evolve: (fold, event) => {
        fold.add(toCurrentEvent(event, where));
        return fold;
      },
      ...range,
    });
    return { state: state.state, exists };
  }

  /**
   * Rebuilds every session from the log alone in one pass over it (readAll), e.g. to list or audit
   * them: one read of the log instead of one per session. Each state comes with its last event's
   * timestamp.
   */
  async rebuildAll(): Promise<Map<string, { state: SessionState; lastTimestamp: number }>> {
    const folds = new Map<string, { fold: SessionFold; lastTimestamp: number }>();
    for await (const stored of this.options.store.readAll()) {
      const event = toCurrentEvent(stored, `session ${stored.sessionId}`);
      let entry = folds.get(event.sessionId);
      if (!entry) {
        entry = { fold: new SessionFold(initialSessionState(event.sessionId)), lastTimestamp: 0 };
        folds.set(event.sessionId, entry);
      }
      entry.fold.add(event);
      entry.lastTimestamp = event.timestamp;
    }
    const all = new Map<string, { state: SessionState; lastTimestamp: number }>();
    for (const [id, { fold: f, lastTimestamp }] of folds) all.set(id, { state: f.state, lastTimestamp });
    return all;
  }

  /** Reads a session's events, upcast to the current schema. */
  async read(sessionId: string, options: ReadOptions = {}): Promise<{ events: DomainEvent[]; exists: boolean; currentVersion: number }> {
    const result = await this.options.store.readStream(sessionId, options);
    const where = `session ${sessionId}`;
    return { ...result, events: result.events.map((e) => toCurrentEvent(e, where)) };
  }

  /**
   * Records the state after an acknowledged append; saves a snapshot at every `snapshotEvery`.
   * `lastEventId` is the id of the append's last event (the event at `state.version`), which the
   * snapshot records so that a load can tell it belongs to the log it reads.
   */
  async committed(previousVersion: number, state: SessionState, lastEventId?: string): Promise<void> {
    this.remember(state);
    const crossed = Math.floor(state.version / this.every) > Math.floor(previousVersion / this.every);
    if (crossed && this.options.snapshots) {
      await this.options.snapshots.save({
        streamId: state.sessionId,
        version: state.version,
        schema: STATE_SCHEMA,
        state: serializeState(state),
        ...(lastEventId === undefined ? {} : { lastEventId }),
      });
    }
  }

  /** Drops the in-memory state, e.g. after a concurrency conflict, so the next load rereads. */
  forget(sessionId: string): void {
    this.cache.delete(sessionId);
    this.endedAt.delete(sessionId);
  }

  /**
   * The session from its snapshot and the events after it, in one read of the log from the
   * snapshot's version on (a JetStream read of a range starts at the session's first message
   * whatever the range: a separate read of the snapshot's own event would read the log twice).
   * Undefined for a miss: no snapshot, or one that does not match the log, which is then folded
   * from the start.
   */
  private async fromSnapshot(sessionId: string): Promise<SessionState | undefined> {
    // A snapshot that cannot be read (permissions, a bucket gone) is a cache miss, not a failure.
    const snap = await this.options.snapshots?.load(sessionId).catch(() => undefined);
    if (!snap || snap.schema !== STATE_SCHEMA) return undefined;
    // A version that is no event's (a garbled or hand-made value) is a miss too, not a failed read.
    if (!Number.isSafeInteger(snap.version) || snap.version < 1) return undefined;
    let start: SessionState;
    try {
      start = restoreState(snap.state);
    } catch {
      return undefined; // a snapshot of an unexpected shape is a miss too: the log rebuilds it
    }
    // The state must be the one the snapshot says it is: of this session, at that version.
    if (start.sessionId !== sessionId || start.version !== snap.version) return undefined;
    // Its own event first: a snapshot ahead of the log (the log was replaced) is stale, and so is
    // one of another log as long (the session's log was purged and its id reused), whose event at
    // that version is not the one the snapshot was taken after.
    let head: DomainEvent | undefined;
    const where = `session ${sessionId}`;
    const { state } = await aggregateStream(this.options.store, sessionId, {
      from: snap.version,
      initialState: () => new SessionFold(start),
      evolve: (fold, event) => {
        if (head === undefined) head = event;
        else if (head.sequence === snap.version && (snap.lastEventId === undefined || head.id === snap.lastEventId)) fold.add(toCurrentEvent(event, where));
        return fold;
      },
    });
    if (head?.sequence !== snap.version || (snap.lastEventId !== undefined && head.id !== snap.lastEventId)) return undefined;
    return state.state;
  }

  private remember(state: SessionState): void {
    // A load outside the session's queue can finish after a newer commit: never go back.
    const cached = this.cache.get(state.sessionId);
    if (cached && cached.version > state.version) return;
    if ((this.endedAt.get(state.sessionId) ?? 0) > state.version) return;
    this.cache.delete(state.sessionId);
    // An ended session takes no more work (a late input is answered from its log, read again):
    // kept, it would only hold memory that open sessions need. The bound is by count, and one
    // session with large inputs can hold hundreds of KB; a cache full of ended ones held GBs.
    // Only its version is kept, so that a load that read the log before it ended is not cached.
    if (ENDED.has(statusOf(state))) {
      this.endedAt.delete(state.sessionId);
      this.endedAt.set(state.sessionId, state.version);
      if (this.endedAt.size > this.cacheSize) this.endedAt.delete(this.endedAt.keys().next().value!);
      return;
    }
    this.cache.set(state.sessionId, state);
    if (this.cache.size > this.cacheSize) this.cache.delete(this.cache.keys().next().value!);
  }
}
