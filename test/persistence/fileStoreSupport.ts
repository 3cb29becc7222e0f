import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, vi } from 'vitest';
import { FileEventStore } from '../../src/persistence/fileEventStore.js';

/**
 * File stores in temporary directories for one test file: `openStore()` opens one in a new
 * directory (or `dir` again), and each test's stores are closed and directories removed after it.
 */
export function fileStores(prefix: string): { openStore(dir?: string): Promise<{ dir: string; store: FileEventStore }> } {
  const dirs: string[] = [];
  const stores: FileEventStore[] = [];
  afterEach(async () => {
    for (const store of stores.splice(0)) await store.close();
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });
  return {
    async openStore(dir?: string) {
      if (dir === undefined) {
        dir = await mkdtemp(join(tmpdir(), `jetplan-${prefix}-`));
        dirs.push(dir);
      }
      const store = await FileEventStore.open(dir);
      stores.push(store);
      return { dir, store };
    },
  };
}

/** Makes the next fdatasync of any file handle fail, as a disk error would. */
export async function failNextSync(dir: string): Promise<{ mockRestore(): void }> {
  const probe = await open(join(dir, 'probe'), 'w');
  const proto = Object.getPrototypeOf(probe) as { datasync: () => Promise<void> };
  await probe.close();
  return vi.spyOn(proto, 'datasync').mockRejectedValueOnce(new Error('EIO: simulated'));
}
