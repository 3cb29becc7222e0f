import { readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { makeDirs } from './makeDirs.js';
import { z } from 'zod';
import { StoreUnavailableError } from '../errors.js';
import { replaceFile } from './replaceFile.js';
import type { Snapshot, SnapshotStore } from './snapshotStore.js';
import { syncPath } from './syncPath.js';

const StoredSnapshot = z.object({
  streamId: z.string(),
  version: z.number().int().nonnegative(),
  schema: z.number().int(),
  state: z.unknown(),
  lastEventId: z.string().optional(),
});

/**
 * A file name for a stream id that can never leave the snapshot directory: percent-encoding
 * removes separators, and dots are encoded too so no name can be `.` or `..`.
 */
export function snapshotFileName(streamId: string): string {
  return `${encodeURIComponent(streamId).replace(/\./g, '%2E')}.json`;
}

/**
 * Snapshots as one JSON file per stream under `<dir>/snapshots/`. A save writes a temp file, syncs
 * it and renames it over the old one, so a reader (or a crash) sees the old snapshot or the new one,
 * never half of one. Snapshots are a cache: an unreadable file loads as undefined and is rebuilt
 * from the log rather than failing the session.
 */
export class FileSnapshotStore implements SnapshotStore {
  private readonly snapshotDir: string;
  private closed = false;

  /** `dir` is the data directory (the event store's); snapshots go in its `snapshots/` folder. */
  constructor(dir: string) {
    this.snapshotDir = join(dir, 'snapshots');
  }

  /** The stream's snapshot, or undefined when there is none or it cannot be read. */
  async load(streamId: string): Promise<Snapshot | undefined> {
    this.assertOpen();
    let text: string;
    try {
      text = await readFile(join(this.snapshotDir, snapshotFileName(streamId)), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    try {
      const parsed = StoredSnapshot.safeParse(JSON.parse(text));
      return parsed.success && parsed.data.streamId === streamId ? (parsed.data as Snapshot) : undefined;
    } catch {
      return undefined; // not JSON: e.g. written by hand; the log rebuilds it
    }
  }

  /** Atomically replaces the stream's snapshot (temp file + fsync + rename + directory fsync). */
  async save(snapshot: Snapshot): Promise<void> {
    this.assertOpen();
    await makeDirs(this.snapshotDir);
    await replaceFile(join(this.snapshotDir, snapshotFileName(snapshot.streamId)), [JSON.stringify(snapshot)]);
  }

  /** Removes the stream's snapshot, if it has one (the directory entry's removal synced). */
  async delete(streamId: string): Promise<boolean> {
    this.assertOpen();
    try {
      await unlink(join(this.snapshotDir, snapshotFileName(streamId)));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
    await syncPath(this.snapshotDir);
    return true;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreUnavailableError(`snapshot store in ${this.snapshotDir} is closed`);
  }
}
