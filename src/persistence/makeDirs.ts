import { mkdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { StoreUnavailableError } from '../errors.js';
import { syncPath } from './syncPath.js';

/**
 * Creates `dir` and its missing parents, like `mkdir -p`. Node's own `mkdir(dir, { recursive:
 * true })` loops forever where a parent exists but refuses new entries with ENOENT (`/proc/x` on
 * Linux); here each level is tried once and such a path fails with the system's error.
 * @throws StoreUnavailableError (with `code` 'ENOTDIR' and the `path` in the way) when `dir` or one
 * of its parents exists but is not a directory: one line to show, not a bare errno.
 */
export async function makeDirs(dir: string): Promise<void> {
  try {
    await makeLevels(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOTDIR') throw error;
    throw notADirectory(dir, (error as NodeJS.ErrnoException).path ?? dir, error);
  }
}

/** makeDirs' work; a file in the way fails with ENOTDIR whose `path` is that file. */
async function makeLevels(dir: string): Promise<void> {
  try {
    await mkdir(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return assertDirectory(dir, error);
    const parent = dirname(dir);
    // ENOTDIR names the whole path, not the file in the way: the parents' levels find that one.
    if ((code !== 'ENOENT' && code !== 'ENOTDIR') || parent === dir) throw error;
    await makeLevels(parent);
    if (code === 'ENOTDIR') throw error; // the parents are directories: `dir` is in the way itself (`file/`)
    try {
      await mkdir(dir);
    } catch (again) {
      if ((again as NodeJS.ErrnoException).code === 'EEXIST') return assertDirectory(dir, again);
      throw again;
    }
  }
  await madeIn(dir);
}

/**
 * Syncs the parent of a directory just made: its entry is durable before anything is acknowledged
 * in it (a data dir made at the first run, its first append fsynced, could vanish at a power loss).
 */
async function madeIn(dir: string): Promise<void> {
  await syncPath(dirname(dir));
}

async function assertDirectory(dir: string, error: unknown): Promise<void> {
  const stats = await stat(dir);
  // A file in the way: the same error `mkdir -p` gives, rather than a confusing one later.
  if (!stats.isDirectory()) throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${dir}'`), { code: 'ENOTDIR', path: dir, cause: error });
}

/** The error for `dir` that cannot be made because `path` (`dir` or a parent) is no directory. */
function notADirectory(dir: string, path: string, cause: unknown): StoreUnavailableError {
  const message = path === dir ? `${dir} is not a directory` : `cannot create directory ${dir}: ${path} is not a directory`;
  return Object.assign(new StoreUnavailableError(message, { cause }), { code: 'ENOTDIR', path });
}
