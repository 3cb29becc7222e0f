import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';

/**
 * A maker of temporary directories (`jetplan-<name>-*`) for the calling test file, each removed
 * after the test that made it.
 */
export function tempDirs(name: string): () => Promise<string> {
  const dirs: string[] = [];
  afterEach(async () => {
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });
  return async () => {
    const dir = await mkdtemp(join(tmpdir(), `jetplan-${name}-`));
    dirs.push(dir);
    return dir;
  };
}
