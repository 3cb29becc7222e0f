import { mkdir, open, readFile, truncate } from 'node:fs/promises';
import { dirname } from 'node:path';

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

/** An inbox in an append-only JSON-lines file, fsynced on every put. */
export class FileInbox<T> implements Inbox<T> {
  private constructor(
    private readonly path: string,
    private readonly entries: Map<string, T>,
  ) {}

  static async open<T>(path: string): Promise<FileInbox<T>> {
    await mkdir(dirname(path), { recursive: true });
    const entries = new Map<string, T>();
    const text = await readFile(path, 'utf8').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return '';
      throw e;
    });
    const end = text.lastIndexOf('\n') + 1;
    // A torn last line (a crash mid-write) never completed its put: cut it, or the next put would
    // be glued to it and lost.
    if (end < text.length) await truncate(path, Buffer.byteLength(text.slice(0, end)));
    for (const line of text.slice(0, end).split('\n')) {
      if (line) {
        const { id, value } = JSON.parse(line) as { id: string; value: T };
        entries.set(id, value);
      }
    }
    return new FileInbox(path, entries);
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
