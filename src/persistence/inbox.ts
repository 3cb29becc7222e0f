import { constants } from 'node:fs';
import { open, truncate, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { makeDirs } from './makeDirs.js';
import { CorruptLogError, StoreUnavailableError } from '../errors.js';
import { syncPath } from './syncPath.js';

/**
 * An inbox: remembers which message ids were processed, with what result, so a redelivered
 * message is answered from memory instead of being processed again.
 */
export interface Inbox<T> {
  get(id: string): Promise<T | undefined>;
  /** Records the result durably before resolving. */
  put(id: string, value: T): Promise<void>;
}

/** An inbox in memory (tests). */
export class MemoryInbox<T> implements Inbox<T> {
  private readonly entries = new Map<string, T>();
  async get(id: string): Promise<T | undefined> {
    return this.entries.get(id);
  }
  async put(id: string, value: T): Promise<void> {
    this.entries.set(id, structuredClone(value));
  }
}

/** One record of the file, or undefined when the line is not one (damaged). */
function parseRecord<T>(line: string): { id: string; value: T } | undefined {
  try {
    const record = JSON.parse(line) as { id?: unknown; value?: unknown };
    if (typeof record === 'object' && record !== null && typeof record.id === 'string' && 'value' in record) {
      return record as { id: string; value: T };
    }
  } catch {
    // Not JSON: damaged.
  }
  return undefined;
}

/**
 * The records of the file and the byte length of its valid part. What follows `valid` is a torn
 * line (a crash mid-write, no newline yet) or a last line that is not a record. A damaged line
 * before the last is an error: acknowledged records follow it, so it is damage or a hand edit.
 * Scans bytes, not decoded text, so offsets stay exact whatever the lines hold.
 */
function scanRecords<T>(path: string, bytes: Buffer, isValue: (value: unknown) => boolean = () => true): { records: Array<{ id: string; value: T }>; valid: number } {
  const records: Array<{ id: string; value: T }> = [];
  let valid = 0;
  for (let line = 1; ; line++) {
    const end = bytes.indexOf(0x0a, valid);
    if (end < 0) break;
    const text = bytes.toString('utf8', valid, end);
    if (text !== '') {
      const parsed = parseRecord<T>(text);
      const record = parsed && isValue(parsed.value) ? parsed : undefined;
      if (!record && bytes.indexOf(0x0a, end + 1) >= 0) {
        throw new CorruptLogError(`${path} line ${line} is not a valid record; restore the file from a backup or delete that line`);
      }
      if (!record) break;
      records.push(record);
    }
    valid = end + 1;
  }
  return { records, valid };
}

/**
 * An inbox in an append-only JSON-lines file, fsynced on every put. On open, a torn or damaged
 * last line (a crash mid-write: its put never completed) is cut and kept beside the file as
 * `<file>.tail-<offset>-<time>`; a damaged line before the last is a CorruptLogError.
 */
export class FileInbox<T> implements Inbox<T> {
  /** Puts one after another: a failed one is cut back to where the file ended before it. */
  private queue: Promise<unknown> = Promise.resolve();
  /** Set when a failed put could not be cut back: the file ends in part of a record. */
  private broken: Error | undefined;

  private constructor(
    private readonly path: string,
    private readonly entries: Map<string, T>,
    /** The file's length: every record whole, the last one ending in a newline. */
    private size: number,
  ) {}

  /**
   * Opens (creating, durably) the file and reads its records. With `isValue`, a record whose value
   * fails it counts as damaged, as a line that is not JSON does: a report the planner would reject
   * must not be re-sent in place of running the task.
   */
  static async open<T>(path: string, options: { isValue?: (value: unknown) => boolean } = {}): Promise<FileInbox<T>> {
    await makeDirs(dirname(path));
    const fh = await open(path, constants.O_RDWR | constants.O_CREAT, 0o644);
    try {
      const bytes = await fh.readFile();
      const { records, valid } = scanRecords<T>(path, bytes, options.isValue);
      if (valid < bytes.length) {
        // Cut, or the next put would be glued to it (torn) or follow it (damaged) and be lost on
        // the next open; the bytes are kept, durably, before the file loses them.
        await writeFile(`${path}.tail-${valid}-${Date.now()}`, bytes.subarray(valid), { flush: true });
        await syncPath(dirname(path));
        await fh.truncate(valid);
        await fh.datasync();
      }
      // A new file's directory entry is durable before any put is acknowledged.
      await syncPath(dirname(path));
      return new FileInbox(path, new Map(records.map((r) => [r.id, r.value])), valid);
    } finally {
      await fh.close();
    }
  }

  async get(id: string): Promise<T | undefined> {
    return this.entries.get(id);
  }

  put(id: string, value: T): Promise<void> {
    const done = this.queue.then(() => this.append(id, value));
    this.queue = done.catch(() => undefined);
    return done;
  }

  /**
   * Appends one record. A write that fails part-way (a full disk) leaves part of a line, which the
   * next record would be glued to and lost with on the next open: the file is cut back first, and
   * if even that fails, no put is taken until the inbox is opened again (which cuts it).
   */
  private async append(id: string, value: T): Promise<void> {
    if (this.broken) throw new StoreUnavailableError(`${this.path}: a record could not be written, nor cut back; reopen the inbox`, { cause: this.broken });
    const line = `${JSON.stringify({ id, value })}\n`;
    try {
      const fh = await open(this.path, 'a');
      try {
        await fh.appendFile(line);
        await fh.datasync();
      } finally {
        await fh.close();
      }
    } catch (err) {
      await truncate(this.path, this.size).catch((cutErr: unknown) => (this.broken = cutErr instanceof Error ? cutErr : new Error(String(cutErr))));
      throw err;
    }
    this.size += Buffer.byteLength(line);
    this.entries.set(id, value);
  }

  /** Every recorded entry, in insertion order. */
  all(): Array<[string, T]> {
    return [...this.entries];
  }
}
