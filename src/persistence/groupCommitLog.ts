import type { FileHandle } from 'node:fs/promises';
import { StoreUnavailableError } from '../errors.js';
import { encodeFrame } from './fileLog.js';

/** A batch stops growing past this many payload characters (one huge frame would stall everyone). */
const MAX_BATCH_CHARS = 8 * 1024 * 1024;

interface QueuedEntry {
  json: string;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** Counters of a {@link GroupCommitLog}: frames written (one write + one sync each) and bytes. */
export interface GroupCommitStats {
  flushes: number;
  bytes: number;
}

/**
 * The write side of the log, with group commit: entries queued while a flush is in progress are
 * written together as one frame, with one write and one fdatasync, and then all their promises
 * resolve. Throughput therefore grows with concurrency while each entry still waits for its sync.
 *
 * A failed write or sync poisons the log: what reached the disk is unknown (and after a failed
 * fsync Linux may have dropped the dirty pages), so every queued and later entry is rejected with
 * StoreUnavailableError and the store must be reopened, which re-scans and cuts any torn tail.
 */
export class GroupCommitLog {
  private queue: QueuedEntry[] = [];
  private flushing = false;
  private failure: Error | undefined;
  private idleWaiters: Array<() => void> = [];
  private readonly counters: GroupCommitStats = { flushes: 0, bytes: 0 };

  constructor(
    private readonly fh: FileHandle,
    private position: number,
    private readonly fsync: boolean,
    private readonly name: string,
  ) {}

  get stats(): GroupCommitStats {
    return { ...this.counters };
  }

  /** Queues one entry (JSON text); resolves once the frame holding it is written and synced. */
  write(json: string): Promise<void> {
    if (this.failure) return Promise.reject(this.unavailable());
    return new Promise((resolve, reject) => {
      this.queue.push({ json, resolve, reject });
      if (this.flushing) return;
      this.flushing = true;
      // Start on the next macrotask rather than now, so every entry queued in this turn (and in
      // the microtasks it spawns) joins the first batch.
      setImmediate(() => void this.flushLoop());
    });
  }

  /** Resolves once nothing is queued or being written. */
  async drain(): Promise<void> {
    if (!this.flushing) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  /** Waits for queued entries to be written, then closes the file. */
  async close(): Promise<void> {
    await this.drain();
    await this.fh.close();
  }

  private async flushLoop(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.takeBatch();
      try {
        await this.writeFrame(batch);
      } catch (err) {
        this.fail(err, batch);
        break;
      }
      for (const entry of batch) entry.resolve();
      // Yield a macrotask so writers woken by these resolutions queue their next entries before
      // the next batch is cut; cutting at once would make batches alternate between 1 and N-1.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    this.flushing = false;
    for (const wake of this.idleWaiters.splice(0)) wake();
  }

  private takeBatch(): QueuedEntry[] {
    let chars = 0;
    let count = 0;
    while (count < this.queue.length && (count === 0 || chars < MAX_BATCH_CHARS)) {
      chars += (this.queue[count] as QueuedEntry).json.length;
      count++;
    }
    return this.queue.splice(0, count);
  }

  private async writeFrame(batch: readonly QueuedEntry[]): Promise<void> {
    const frame = encodeFrame(`[${batch.map((entry) => entry.json).join(',')}]`);
    for (let written = 0; written < frame.length; ) {
      const { bytesWritten } = await this.fh.write(frame, written, frame.length - written, this.position + written);
      if (bytesWritten <= 0) throw new Error(`${this.name}: write made no progress`);
      written += bytesWritten;
    }
    // fdatasync suffices: it also syncs the file size, which is the metadata an append changes.
    if (this.fsync) await this.fh.datasync();
    this.position += frame.length;
    this.counters.flushes++;
    this.counters.bytes += frame.length;
  }

  private fail(err: unknown, batch: readonly QueuedEntry[]): void {
    this.failure = err instanceof Error ? err : new Error(String(err));
    const error = this.unavailable();
    for (const entry of [...batch, ...this.queue.splice(0)]) entry.reject(error);
  }

  private unavailable(): StoreUnavailableError {
    return new StoreUnavailableError(`${this.name}: a write failed earlier; reopen the store`, {
      cause: this.failure,
    });
  }
}
