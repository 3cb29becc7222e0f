import { randomUUID } from 'node:crypto';
import { link, open, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StoreUnavailableError } from '../errors.js';

/** Whether a process with this pid exists (EPERM means it exists but belongs to someone else). */
export function isPidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Which file this is: inode plus modification time and size, since a file system may give a new
 * file the inode of one just deleted. (Not ctime: renaming a file changes it.)
 */
const fileId = (st: { ino: number; mtimeMs: number; size: number }): string => `${st.ino}:${st.mtimeMs}:${st.size}`;

/** The pid a lock file holds (undefined if unreadable) and its identity, read from one open file. */
async function readLock(lockPath: string): Promise<{ pid: number | undefined; id: string } | undefined> {
  let handle;
  try {
    handle = await open(lockPath, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const st = await handle.stat();
    const pid = Number.parseInt(await handle.readFile('utf8'), 10);
    return { pid: Number.isInteger(pid) && pid > 0 ? pid : undefined, id: fileId(st) };
  } finally {
    await handle.close();
  }
}

async function unlinkIfPresent(path: string): Promise<void> {
  await unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}

/** Test hook of {@link acquireDirLock}: runs between finding a stale lock and taking it over. */
export interface DirLockOptions {
  beforeTakeover?: () => Promise<void>;
}

/**
 * Makes this process the single owner of `dir` via `<dir>/LOCK`, which holds the owner's pid.
 * The lock is created by hard-linking a fully written temp file, which fails with EEXIST exactly
 * like an `O_CREAT|O_EXCL` ("wx") open but can never leave an empty LOCK behind after a crash.
 * A lock whose pid is dead (or unreadable) is stale and taken over: renamed aside (atomic), and
 * removed only if the file renamed is the very one found stale (same inode, mtime, size). Otherwise another
 * process took it over first; its lock is put back and this one fails, so two processes starting
 * on a crashed directory at the same instant cannot both own it. Returns the release function.
 */
export async function acquireDirLock(dir: string, options: DirLockOptions = {}): Promise<() => Promise<void>> {
  const lockPath = join(dir, 'LOCK');
  const tmpPath = join(dir, `LOCK.${process.pid}.${randomUUID().slice(0, 8)}.tmp`);
  await writeFile(tmpPath, `${process.pid}\n`);
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await link(tmpPath, lockPath);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        // Another process keeps recreating the lock between our takeover attempts.
        if (attempt >= 2) throw new StoreUnavailableError(`data directory ${dir} is being locked concurrently`);
      }
      const found = await readLock(lockPath);
      if (found?.pid !== undefined && isPidAlive(found.pid)) {
        throw new StoreUnavailableError(`data directory ${dir} is in use by pid ${found.pid}`);
      }
      if (found) {
        await options.beforeTakeover?.();
        await removeStale(dir, lockPath, found.id);
      }
    }
  } finally {
    await unlinkIfPresent(tmpPath);
  }
  return async () => {
    // Only remove a lock that is still ours.
    if ((await readLock(lockPath))?.pid === process.pid) await unlinkIfPresent(lockPath);
  };
}

/** Removes the stale lock `id`; puts back (and fails on) a lock that replaced it. */
async function removeStale(dir: string, lockPath: string, id: string): Promise<void> {
  const aside = join(dir, `LOCK.${process.pid}.${randomUUID().slice(0, 8)}.stale`);
  try {
    await rename(lockPath, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // someone removed it: try again
    throw err;
  }
  if (fileId(await stat(aside)) === id) {
    await unlinkIfPresent(aside);
    return;
  }
  // Not the lock found stale: another process's fresh one. Restore it (unless yet another lock
  // appeared meanwhile) and leave the directory to it.
  await link(aside, lockPath).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
  await unlinkIfPresent(aside);
  throw new StoreUnavailableError(`data directory ${dir} is being locked concurrently`);
}
