import { constants } from 'node:fs';
import { open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeDirs } from './makeDirs.js';
import { checkNewEvents, storedIdError } from './appendChecks.js';
import { StoreUnavailableError } from '../errors.js';
import type { OutboxCommand } from '../protocol/commands.js';
import type { NewEvent } from '../protocol/events.js';
import { acquireDirLock } from './dirLock.js';
import type {
  AppendOptions,
  AppendResult,
  EventStore,
  OutboxStore,
} from './eventStore.js';
import { encodeFrame, scanLog } from './fileLog.js';
import { GroupCommitLog } from './groupCommitLog.js';
import { type DeliveredEntry, encodeAppendEntry, framesWithout, replayFrames } from './logEntry.js';
import { IndexedEventStore } from './indexedEventStore.js';
import { checkExpectedVersion, firstKnownId, landedPrefix, StreamIndex, type StreamIds } from './streamIndex.js';
import { replaceFile } from './replaceFile.js';
import { syncPath } from './syncPath.js';

/** Options of {@link FileEventStore.open}. */
export interface FileEventStoreOptions {
  /** fdatasync every flush before acknowledging it (default true). Off only for tests/benchmarks. */
  fsync?: boolean;
}

/** Counters since open: appends acknowledged, flushes (one write + one sync each) and bytes written. */
export interface FileEventStoreStats {
  appends: number;
  flushes: number;
  bytes: number;
}

/** Where the bytes cut from the log's end at `offset` are kept: `events.log.tail-<offset>-<time>`. */
export const tailFileName = (offset: number): string => `events.log.tail-${offset}-${Date.now()}`;

/** An append queued but not yet durable: the version it ends at, and its outcome. */
interface InFlightAppend {
  next: number;
  done: Promise<AppendResult>;
}

/**
 * The embedded event store: one append-only log (`<dir>/events.log`) for all streams, plus an
 * in-memory index rebuilt from it on open. See fileLog.ts for the framing and logEntry.ts for the
 * entries. Concurrency checks run in memory in call order against `reserved` versions (which
 * include appends queued but not yet durable); reads only ever see durable events.
 */
export class FileEventStore extends IndexedEventStore implements EventStore, OutboxStore {
  /** Stream versions including queued appends; absent when equal to the durable version. */
  private readonly reserved = new Map<string, number>();
  /** Each stream's last append while it is being written (a retry of it waits for it). */
  private readonly inFlight = new Map<string, InFlightAppend>();
  /** Event ids of appends being written, by stream, with their versions. */
  private readonly writing = new Map<string, Map<string, number>>();
  /**
   * The streams as appends see them: durable events, then those of appends still being written. A
   * retry counts those as landed, as the memory store (which has applied them) and JetStream
   * (which queues the retry behind them) do.
   */
  private readonly queued: StreamIds = {
    version: (streamId) => this.reserved.get(streamId) ?? this.index.version(streamId),
    idsFrom: (streamId, from) => [...this.index.idsFrom(streamId, from), ...this.writingIdsFrom(streamId, from)],
  };
  private appends = 0;
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly dir: string,
    private readonly log: GroupCommitLog,
    protected readonly index: StreamIndex,
    private readonly releaseLock: () => Promise<void>,
    /**
     * Bytes of torn tail cut from the log when it was opened (0 after a clean shutdown); they are
     * kept in `events.log.tail-<offset>-<time>` in the data directory.
     */
    readonly recoveredTailBytes: number,
  ) {
    super();
  }

  /**
   * Opens (creating if needed) the store in `dir`: takes the directory lock, scans and verifies the
   * log, cuts a torn tail and rebuilds the index. Throws StoreUnavailableError when `dir` (or a
   * parent) is not a directory or another live process holds it, and CorruptLogError when
   * acknowledged history is damaged.
   */
  static async open(dir: string, options: FileEventStoreOptions = {}): Promise<FileEventStore> {
    await makeDirs(dir);
    const releaseLock = await acquireDirLock(dir);
    const path = join(dir, 'events.log');
    try {
      const fh = await open(path, constants.O_RDWR | constants.O_CREAT, 0o644).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EISDIR') throw err;
        throw new StoreUnavailableError(`${path} is a directory, not an event log: move it away if it is not jetplan's`, { cause: err });
      });
      try {
        const bytes = await fh.readFile();
        const { frames, validEnd } = scanLog(bytes, path);
        const size = bytes.length;
        if (validEnd < size) {
          // The only truncation ever done: a tail that fails its checks. A crash mid-write leaves
          // one, but so could damage to the last acknowledged record: keep the bytes beside the
          // log (tailFileName) before cutting, so nothing is destroyed, only set aside.
          await writeFile(join(dir, tailFileName(validEnd)), bytes.subarray(validEnd), { flush: true });
          await syncPath(dir); // the kept bytes are durable before the log loses them
          await fh.truncate(validEnd);
          await fh.datasync();
        }
        const index = new StreamIndex();
        replayFrames(frames, index, path);
        await syncPath(dir);
        const log = new GroupCommitLog(fh, validEnd, options.fsync ?? true, path);
        return new FileEventStore(dir, log, index, releaseLock, size - validEnd);
      } catch (err) {
        await fh.close();
        throw err;
      }
    } catch (err) {
      await releaseLock();
      throw err;
    }
  }

  /** Counters since open; `flushes` < `appends` shows group commit at work. */
  get stats(): FileEventStoreStats {
    const { flushes, bytes } = this.log.stats;
    return { appends: this.appends, flushes, bytes };
  }

  /**
   * Appends `events` and `options.commands` as one log entry. The version check and reservation
   * happen synchronously, so of concurrent appends at one expected version exactly one wins.
   * Resolves once the entry is written and synced.
   */
  async appendToStream(streamId: string, events: NewEvent[], options: AppendOptions): Promise<AppendResult> {
    this.assertOpen();
    checkNewEvents(streamId, events, options);
    const current = this.queued.version(streamId);
    const landed = landedPrefix(this.queued, streamId, options.expectedVersion, events);
    if (landed > 0 && landed === events.length) return this.whenDurable(streamId, current);
    if (landed > 0) events = events.slice(landed); // a retry: the rest follows what landed
    else checkExpectedVersion(streamId, options.expectedVersion, current);
    const newIds = events.map((e) => e.id);
    // Stored, or in an append still being written (not in the index yet): refused alike.
    const stored = this.index.storedId(streamId, newIds) ?? firstKnownId(this.writing.get(streamId), newIds);
    if (stored) throw storedIdError(streamId, stored.id, stored.version);
    const commands = options.commands ?? [];
    if (events.length === 0 && commands.length === 0) return { nextExpectedVersion: current };
    const { json, eventTexts } = encodeAppendEntry(streamId, current, events, commands);
    // Copies the caller cannot mutate; commands are rare, so the round trip costs little.
    const storedCommands = commands.length > 0 ? (JSON.parse(JSON.stringify(commands)) as OutboxCommand[]) : [];
    const next = current + events.length;
    this.reserved.set(streamId, next);
    const done = this.write(streamId, current, next, json, eventTexts, storedCommands, newIds);
    const flight: InFlightAppend = { next, done };
    this.inFlight.set(streamId, flight);
    const writing = this.writing.get(streamId) ?? new Map<string, number>();
    this.writing.set(streamId, writing);
    newIds.forEach((id, i) => writing.set(id, current + i + 1));
    try {
      return await done;
    } finally {
      if (this.inFlight.get(streamId) === flight) this.inFlight.delete(streamId);
      for (const id of newIds) writing.delete(id);
      if (writing.size === 0 && this.writing.get(streamId) === writing) this.writing.delete(streamId);
    }
  }

  /**
   * The outcome of a retry whose events all landed, `current` being where the last of them is: at
   * once if they are durable, else that of the append still writing it (a retry waits for it, as
   * an append resolves only once durable, and fails with it).
   */
  private whenDurable(streamId: string, current: number): AppendResult | Promise<AppendResult> {
    if (current === this.index.version(streamId)) return { nextExpectedVersion: current };
    const last = this.inFlight.get(streamId);
    // Whatever reserves a version is in flight until that version is durable or given up.
    if (last?.next !== current) throw new Error(`stream ${streamId}: version ${current} is reserved by no append being written`);
    return last.done;
  }

  /** Ids of the stream's events from version `from` on that appends are still writing, in order. */
  private writingIdsFrom(streamId: string, from: number): string[] {
    const start = Math.max(from, this.index.version(streamId) + 1);
    const end = this.queued.version(streamId);
    const ids: string[] = [];
    // An id stays here briefly once its append is durable or failed: only reserved versions count.
    for (const [id, version] of this.writing.get(streamId) ?? []) if (version >= start && version <= end) ids[version - start] = id;
    return ids.filter((id) => id !== undefined); // a gap shortens the list, which landedPrefix refuses
  }

  /** Writes an append's entry and, once durable, applies it to the index. */
  private async write(
    streamId: string,
    current: number,
    next: number,
    json: string,
    eventTexts: string[],
    commands: OutboxCommand[],
    ids: string[],
  ): Promise<AppendResult> {
    try {
      await this.log.write(json);
    } catch (err) {
      // The log is poisoned and fails everything queued, so the durable version is the truth again.
      this.reserved.delete(streamId);
      throw err;
    }
    this.index.append(streamId, current, eventTexts, commands, ids);
    this.appends++;
    if (this.reserved.get(streamId) === next) this.reserved.delete(streamId);
    return { nextExpectedVersion: next };
  }

  /** Durably marks commands delivered; ids not pending are ignored, so nothing is written for them. */
  async markDelivered(commandIds: string[]): Promise<void> {
    this.assertOpen();
    const ids = [...new Set(commandIds)].filter((id) => this.index.isPending(id));
    if (ids.length === 0) return;
    const entry: DeliveredEntry = { t: 'd', ids };
    await this.log.write(JSON.stringify(entry));
    this.index.markDelivered(ids);
  }

  /**
   * Removes whole streams from the log, then closes the store (retention: `jetplan purge`). Waits
   * for appends in flight, then rewrites the log without the streams' appends and their commands'
   * delivery marks, to a temp file that is synced and renamed over `events.log` (and the directory
   * synced) while the lock is still held: a crash leaves the old log or the new one, and no other
   * process opens the directory meanwhile. `entries` counts the log entries removed.
   */
  async removeStreamsAndClose(streamIds: ReadonlySet<string>): Promise<{ entries: number }> {
    this.assertOpen();
    let entries = 0;
    this.closing = (async () => {
      try {
        await this.log.close();
        if (streamIds.size === 0) return;
        const path = join(this.dir, 'events.log');
        const { frames } = scanLog(await readFile(path), path);
        const rest = framesWithout(frames, streamIds, path);
        entries = rest.entries;
        if (entries > 0) await replaceFile(path, rest.payloads.map(encodeFrame));
      } finally {
        await this.releaseLock();
      }
    })();
    await this.closing;
    return { entries };
  }

  /** Waits for in-flight appends, closes the log and releases the lock. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      try {
        await this.log.close();
      } finally {
        await this.releaseLock();
      }
    })();
    return this.closing;
  }

  protected assertOpen(): void {
    if (this.closing) throw new StoreUnavailableError(`event store in ${this.dir} is closed`);
  }
}

