import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StoreUnavailableError } from '../errors.js';
import type { NewEvent } from '../protocol/events.js';
import type { AppendOptions, EventStore } from './eventStore.js';
import { scanLog } from './fileLog.js';
import { IndexedEventStore } from './indexedEventStore.js';
import { replayFrames } from './logEntry.js';
import { StreamIndex } from './streamIndex.js';

/**
 * The file store's log as it stood when opened, for reading only (`jetplan replay`, `sessions`):
 * no directory lock, so it can be read while a `demo` or `resume` process owns the directory. A
 * torn or half-written tail (that process may be mid-append) is left out, not cut: the log is
 * never written here. Appends are refused.
 */
export class ReadOnlyFileEventStore extends IndexedEventStore implements EventStore {
  private closed = false;

  private constructor(
    private readonly dir: string,
    protected readonly index: StreamIndex,
    /** Bytes at the end of the log left out: a record being written, or a damaged last one. */
    readonly omittedTailBytes: number,
  ) {
    super();
  }

  /** Reads the log in `dir` (a directory without one holds no sessions). */
  static async open(dir: string): Promise<ReadOnlyFileEventStore> {
    const path = join(dir, 'events.log');
    const bytes = await readFile(path).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return Buffer.alloc(0);
      throw new StoreUnavailableError(`cannot read ${path}: ${err.message}`, { cause: err });
    });
    const index = new StreamIndex();
    const { frames, validEnd } = scanLog(bytes, path);
    replayFrames(frames, index, path);
    return new ReadOnlyFileEventStore(dir, index, bytes.length - validEnd);
  }

  async appendToStream(_streamId: string, _events: NewEvent[], _options: AppendOptions): Promise<never> {
    throw new StoreUnavailableError(`the event store in ${this.dir} is open for reading only`);
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  protected assertOpen(): void {
    if (this.closed) throw new StoreUnavailableError(`event store in ${this.dir} is closed`);
  }
}
