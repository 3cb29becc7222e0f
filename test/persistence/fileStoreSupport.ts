import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, vi } from 'vitest';
import { FileEventStore } from '../../src/persistence/fileEventStore.js';
import { tempDirs } from '../support/tempDirs.js';

/**
 * File stores in temporary directories for one test file: `openStore()` opens one in a new
 * directory (or `dir` again), and each test's stores are closed and directories removed after it.
 */
export function fileStores(prefix: string): { openStore(dir?: string): Promise<{ dir: string; store: FileEventStore }> } {
  const newDir = tempDirs(prefix);
  const stores: FileEventStore[] = [];
  // Registered after tempDirs' hook, so it runs first: the stores close before their directories go.
  afterEach(async () => {
    for (const store of stores.splice(0)) await store.close();
  });
  return {
    async openStore(dir?: string) {
      dir ??= await newDir();
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
