import { mkdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * Creates `dir` and its missing parents, like `mkdir -p`. Node's own `mkdir(dir, { recursive:
 * true })` loops forever where a parent exists but refuses new entries with ENOENT (`/proc/x` on
 * Linux); here each level is tried once and such a path fails with the system's error.
 */
export async function makeDirs(dir: string): Promise<void> {
  try {
    await mkdir(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return assertDirectory(dir, error);
    const parent = dirname(dir);
    if (code !== 'ENOENT' || parent === dir) throw error;
    await makeDirs(parent);
    try {
      await mkdir(dir);
    } catch (again) {
      if ((again as NodeJS.ErrnoException).code === 'EEXIST') return assertDirectory(dir, again);
      throw again;
    }
  }
}

async function assertDirectory(dir: string, error: unknown): Promise<void> {
  const stats = await stat(dir);
  // A file in the way: the same error `mkdir -p` gives, rather than a confusing one later.
  if (!stats.isDirectory()) throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${dir}'`), { code: 'ENOTDIR', path: dir, cause: error });
}
