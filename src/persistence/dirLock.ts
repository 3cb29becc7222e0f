import { randomUUID } from 'node:crypto';
import { link, open, readdir, realpath, unlink, writeFile } from 'node:fs/promises';
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
 * Directories (real paths) this process holds the lock of, and those it is taking a lock over in.
 * A lock file holding our own pid is ours only if listed: after a crash and restart the new
 * process often gets the same pid (PID 1 in a container), and its predecessor's lock is stale.
 */
const held = new Set<string>();
const takingOver = new Set<string>();

/** Whether a lock holding `pid` is live; our own pid counts only for a directory in `mine`. */
function isHolderLive(pid: number, key: string, mine: ReadonlySet<string>): boolean {
  return pid === process.pid ? mine.has(key) : isPidAlive(pid);
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
    if (!st.isFile()) {
      // Not something jetplan made (a directory, a FIFO): no pid to check, nothing to take over.
      throw new StoreUnavailableError(`${lockPath} is not a lock file (it is not a regular file): remove it if no jetplan uses the directory`);
    }
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
 * A lock whose pid is dead (or unreadable) is stale and taken over, under a second lock,
 * `LOCK.takeover`, made the same way: of processes finding LOCK stale at the same instant only one
 * removes it, after checking it is still the very file found stale (inode, mtime, size); the
 * others fail. Nobody else removes a LOCK, so two processes never both own the directory.
 * A LOCK holding our own pid is live only while this process holds the directory (a second open
 * in this process is refused); otherwise it was left by an earlier process that had our pid.
 * Returns the release function.
 */
export async function acquireDirLock(dir: string, options: DirLockOptions = {}): Promise<() => Promise<void>> {
  const key = await realpath(dir);
  const lockPath = join(dir, 'LOCK');
  const tmpPath = join(dir, `LOCK.${process.pid}.${randomUUID().slice(0, 8)}.tmp`);
  attempts.add(tmpPath);
  await writeFile(tmpPath, `${process.pid}\n`);
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await link(tmpPath, lockPath);
        // Recorded at once, before any other await: a concurrent open in this process must see it.
        held.add(key);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        // Another process keeps recreating the lock between our takeover attempts.
        if (attempt >= 2) throw new StoreUnavailableError(`data directory ${dir} is being locked concurrently`);
      }
      const found = await readLock(lockPath);
      assertNotLive(dir, key, found);
      if (found) {
        await options.beforeTakeover?.();
        await underTakeoverLock(dir, key, tmpPath, async () => {
          const now = await readLock(lockPath);
          assertNotLive(dir, key, now);
          // Still the file found stale: nobody can have replaced it, since only a takeover removes one.
          if (now?.id === found.id) await unlinkIfPresent(lockPath);
        });
      }
    }
  } finally {
    await unlinkIfPresent(tmpPath);
    attempts.delete(tmpPath);
  }
  await removeDeadTemps(dir);
  return async () => {
    try {
      // Only remove a lock that is still ours.
      if ((await readLock(lockPath))?.pid === process.pid) await unlinkIfPresent(lockPath);
    } finally {
      held.delete(key);
    }
  };
}

/** The temp file of a lock attempt: `LOCK.<pid>.<8 hex>.tmp`. */
const LOCK_TEMP = /^LOCK\.(\d+)\.[0-9a-f]{8}\.tmp$/;

/** This process's lock attempts under way, by temp path: its own pid on a temp is no sign of life. */
const attempts = new Set<string>();

/**
 * Removes the temp files of lock attempts whose process is dead (killed between writing the file
 * and removing it); a live process's is left alone, it may be about to link it. One with our own
 * pid is an earlier process's (a restart that got the same pid, PID 1 in a container) unless it
 * is one of our attempts under way. Best effort.
 */
async function removeDeadTemps(dir: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    const pid = Number(LOCK_TEMP.exec(name)?.[1] ?? NaN);
    if (Number.isNaN(pid)) continue;
    const path = join(dir, name);
    const dead = pid === process.pid ? !attempts.has(path) : !isPidAlive(pid);
    if (dead) await unlinkIfPresent(path).catch(() => undefined);
  }
}

function assertNotLive(dir: string, key: string, lock: { pid: number | undefined } | undefined): void {
  if (lock?.pid !== undefined && isHolderLive(lock.pid, key, held)) {
    // A pid reused by another program after the holder died (a reboot, a container) looks alive:
    // say how to tell and what to do, since only a person can.
    throw new StoreUnavailableError(
      `data directory ${dir} is in use by pid ${lock.pid} (if that process is not jetplan, the lock is left from a crash: remove ${join(dir, 'LOCK')})`,
    );
  }
}

/**
 * Runs `work` holding `<dir>/LOCK.takeover` (linked from `tmpPath`, which holds our pid). A
 * takeover lock left by a dead process (or by an earlier process with our pid) is removed; one
 * held by a live process fails this one.
 */
async function underTakeoverLock(dir: string, key: string, tmpPath: string, work: () => Promise<void>): Promise<void> {
  const takeoverPath = join(dir, 'LOCK.takeover');
  try {
    await link(tmpPath, takeoverPath);
    takingOver.add(key);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const holder = await readLock(takeoverPath);
    if (holder?.pid === undefined || !isHolderLive(holder.pid, key, takingOver)) await unlinkIfPresent(takeoverPath);
    throw new StoreUnavailableError(`data directory ${dir} is being locked concurrently`);
  }
  try {
    await work();
  } finally {
    try {
      await unlinkIfPresent(takeoverPath);
    } finally {
      takingOver.delete(key);
    }
  }
}
