/** makeDirs makes a new directory's entry durable: the parent of each level it creates is synced. */
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { makeDirs } from '../../src/persistence/makeDirs.js';
import { tempDirs } from '../support/tempDirs.js';

const synced = vi.hoisted(() => [] as string[]);
vi.mock('../../src/persistence/syncPath.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../src/persistence/syncPath.js')>();
  return { syncPath: async (path: string) => (synced.push(path), real.syncPath(path)) };
});

const tempDir = tempDirs('makedirs-sync');

describe('makeDirs', () => {
  it('syncs the parent of every level it creates, and nothing for a directory that exists', async () => {
    const root = await tempDir();
    synced.length = 0;
    await makeDirs(join(root, 'a', 'b', 'c'));
    expect(synced).toEqual([root, join(root, 'a'), join(root, 'a', 'b')]);
    synced.length = 0;
    await makeDirs(join(root, 'a', 'b'));
    expect(synced).toEqual([]);
  });
});
