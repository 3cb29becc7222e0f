/**
 * Retention for the embedded store: removes whole sessions that ended long enough ago from a data
 * dir (`jetplan purge` without NATS), as purgeEndedSessions does on a NATS deployment.
 */
import { access, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { endedSessions } from '../actors/endedSessions.js';
import { StoreUnavailableError, ValidationError } from '../errors.js';
import { FileEventStore } from '../persistence/fileEventStore.js';
import { FileSnapshotStore } from '../persistence/fileSnapshotStore.js';
import { ReadOnlyFileEventStore } from '../persistence/readOnlyFileEventStore.js';
import { replaceFile } from '../persistence/replaceFile.js';

/** Options of {@link purgeDataDir}. */
export interface DataDirPurgeOptions {
  /** Only sessions whose last event is at least this old, ms: a whole number of at least 0. */
  olderThanMs: number;
  /** Find the sessions that would go and remove nothing (default false). */
  dryRun?: boolean;
  /** The time ages are measured from, ms since the epoch (default now). */
  now?: number;
}

/** What a data dir purge removed (with `dryRun`: would remove) and what it kept. */
export interface DataDirPurgeResult {
  /** The sessions removed, in id order. */
  sessions: string[];
  /** Log entries removed: appends, and delivery marks of their commands (0 with `dryRun`). */
  entries: number;
  /** Snapshot files removed (0 with `dryRun`). */
  snapshots: number;
  /** Records of the demo executor's report inbox (`executions.log`) removed (0 with `dryRun`). */
  executions: number;
  /** Ended sessions kept: their last event is more recent than `olderThanMs`. */
  recent: number;
  /** Sessions kept because they have not ended (open, or never started). */
  open: number;
  /**
   * Bytes of an incomplete record at the end of `events.log` (a writer cut short): a purge sets
   * them aside, as opening the store always does (`events.log.tail-<offset>-<time>`); a dry run
   * leaves them in place.
   */
  tornTailBytes: number;
}

/**
 * Removes every session of the data dir `dir` that has ended (or never started: every input
 * rejected) and whose last event is at least
 * `olderThanMs` old: its log entries (events, commands, delivery marks), its snapshot and its
 * records in the executor's report inbox. Takes the directory's lock, so it refuses while another
 * process (a running demo) uses the directory. A crash leaves each file whole, old or new; a rerun
 * finishes what it left. A missing directory holds no sessions.
 * @throws ValidationError for a bad option; StoreUnavailableError when the directory is in use.
 */
export async function purgeDataDir(dir: string, o: DataDirPurgeOptions): Promise<DataDirPurgeResult> {
  if (!Number.isSafeInteger(o.olderThanMs) || o.olderThanMs < 0) {
    throw new ValidationError(`olderThanMs must be a whole number of milliseconds of at least 0, got ${String(o.olderThanMs)}`);
  }
  const none: DataDirPurgeResult = { sessions: [], entries: 0, snapshots: 0, executions: 0, recent: 0, open: 0, tornTailBytes: 0 };
  // Opening the store would create the directory: a purge of nothing must not.
  if (!(await hasLog(dir))) return none;
  const cutoff = (o.now ?? Date.now()) - o.olderThanMs;
  if (o.dryRun) {
    // Read-only: a dry run changes nothing, not even a torn tail, and takes no lock.
    const reader = await ReadOnlyFileEventStore.open(dir);
    try {
      const { ids, recent, open } = await endedSessions(reader, cutoff);
      return { ...none, sessions: ids, recent, open, tornTailBytes: reader.omittedTailBytes };
    } finally {
      await reader.close();
    }
  }
  const store = await FileEventStore.open(dir);
  try {
    const { ids, recent, open } = await endedSessions(store, cutoff);
    const result: DataDirPurgeResult = { ...none, sessions: ids, recent, open, tornTailBytes: store.recoveredTailBytes };
    if (ids.length === 0) return result;
    // Snapshots and inbox records first: an interruption leaves the sessions listed, for a rerun.
    const snapshots = new FileSnapshotStore(dir);
    for (const id of ids) if (await snapshots.delete(id)) result.snapshots++;
    result.executions = await removeInboxRecords(join(dir, 'executions.log'), ids);
    result.entries = (await store.removeStreamsAndClose(new Set(ids))).entries;
    return result;
  } finally {
    await store.close();
  }
}

/** Whether `dir` holds an event log; a `dir` that is not a directory is a StoreUnavailableError. */
async function hasLog(dir: string): Promise<boolean> {
  const kind = await stat(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw new StoreUnavailableError(`${dir}: ${err.message}`, { cause: err });
  });
  if (kind === undefined) return false;
  if (!kind.isDirectory()) throw new StoreUnavailableError(`${dir} is not a directory`);
  return access(join(dir, 'events.log')).then(() => true, () => false);
}

/**
 * Rewrites the executor's inbox (`{id, value}` JSON lines keyed by dispatch id,
 * `<sessionId>.<…>`) without the records of `sessionIds`; lines it cannot read are kept as they are.
 */
async function removeInboxRecords(path: string, sessionIds: readonly string[]): Promise<number> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  const prefixes = sessionIds.map((id) => `${id}.`);
  const lines = text.split('\n');
  // What follows the last newline ('' when the file ends in one) is a torn write: kept as it is,
  // unterminated, so that the inbox sets it aside on open exactly as it would have.
  const tail = lines.pop()!;
  const kept = lines.filter((line) => {
    if (line === '') return true;
    const id = recordId(line);
    return id === undefined || !prefixes.some((p) => id.startsWith(p));
  });
  const removed = lines.length - kept.length;
  // Every kept record keeps its newline: without it, the new last record would look torn.
  if (removed > 0) await replaceFile(path, [kept.map((line) => `${line}\n`).join('') + tail]);
  return removed;
}

function recordId(line: string): string | undefined {
  try {
    const id = (JSON.parse(line) as { id?: unknown }).id;
    return typeof id === 'string' ? id : undefined;
  } catch {
    return undefined;
  }
}
