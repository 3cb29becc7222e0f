import { randomUUID } from 'node:crypto';
import { link, readFile, unlink, writeFile } from 'node:fs/promises';
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

async function readLockPid(lockPath: string): Promise<number | undefined> {
  try {
    const pid = Number.parseInt(await readFile(lockPath, 'utf8'), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function unlinkIfPresent(path: string): Promise<void> {
  await unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}

/**
 * Makes this process the single owner of `dir` via `<dir>/LOCK`, which holds the owner's pid.
 * The lock is created by hard-linking a fully written temp file, which fails with EEXIST exactly
 * like an `O_CREAT|O_EXCL` ("wx") open but can never leave an empty LOCK behind after a crash.
 * A lock whose pid is dead (or unreadable) is stale and taken over. Returns the release function.
 */
export async function acquireDirLock(dir: string): Promise<() => Promise<void>> {
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
      const owner = await readLockPid(lockPath);
      if (owner !== undefined && isPidAlive(owner)) {
        throw new StoreUnavailableError(`data directory ${dir} is in use by pid ${owner}`);
      }
      await unlinkIfPresent(lockPath);
    }
  } finally {
    await unlinkIfPresent(tmpPath);
  }
  return async () => {
    // Only remove a lock that is still ours.
    if ((await readLockPid(lockPath)) === process.pid) await unlinkIfPresent(lockPath);
  };
}
