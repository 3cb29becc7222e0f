import { randomUUID } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { syncPath } from './syncPath.js';

/**
 * Replaces the file at `path` with `chunks`, durably and whole: they go to a temp file beside it,
 * which is synced and renamed over `path`, then the directory is synced. A crash leaves the old
 * file or the new one, never a mix (and at worst a stray `.tmp` file beside it).
 */
export async function replaceFile(path: string, chunks: readonly (string | Uint8Array)[]): Promise<void> {
  // Unique per call: two replacements of one file at once must not share a temp file.
  const tmp = `${path}.${process.pid}.${randomUUID().slice(0, 8)}.tmp`;
  try {
    const fh = await open(tmp, 'wx', 0o644);
    let expected = 0;
    try {
      // writeFile, not write: one write call may store only part of a chunk (a disk filling up)
      // without an error, and a short file must never be renamed over a whole one.
      for (const chunk of chunks) {
        await fh.writeFile(chunk);
        expected += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.byteLength;
      }
      await fh.sync();
      const { size } = await fh.stat();
      if (size !== expected) throw new Error(`${tmp}: wrote ${size} of ${expected} bytes; ${path} left as it was`);
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await syncPath(dirname(path));
}
