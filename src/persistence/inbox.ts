import { constants } from 'node:fs';
import { open, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { makeDirs } from './makeDirs.js';
import { CorruptLogError } from '../errors.js';
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
  private constructor(
    private readonly path: string,
    private readonly entries: Map<string, T>,
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
      return new FileInbox(path, new Map(records.map((r) => [r.id, r.value])));
    } finally {
      await fh.close();
    }
  }

  async get(id: string): Promise<T | undefined> {
    return this.entries.get(id);
  }

  async put(id: string, value: T): Promise<void> {
    const fh = await open(this.path, 'a');
    try {
      await fh.appendFile(`${JSON.stringify({ id, value })}\n`);
      await fh.datasync();
    } finally {
      await fh.close();
    }
    this.entries.set(id, value);
  }

  /** Every recorded entry, in insertion order. */
  all(): Array<[string, T]> {
    return [...this.entries];
  }
}
