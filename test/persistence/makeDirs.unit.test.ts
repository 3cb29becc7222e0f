import { tempDirs } from '../support/tempDirs.js';
import { existsSync } from 'node:fs';
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeDirs } from '../../src/persistence/makeDirs.js';
import { FileEventStore } from '../../src/persistence/fileEventStore.js';

const tempDir = tempDirs('mkdirs');

describe('makeDirs', () => {
  it('creates the missing parents and accepts a directory that exists', async () => {
    const root = await tempDir();
    const dir = join(root, 'a', 'b', 'c');
    await makeDirs(dir);
    expect((await stat(dir)).isDirectory()).toBe(true);
    await expect(makeDirs(dir)).resolves.toBeUndefined();
    await expect(makeDirs(root)).resolves.toBeUndefined();
  });

  it('refuses a file in the way, at the path or at a parent, with ENOTDIR', async () => {
    const root = await tempDir();
    const file = join(root, 'file');
    await writeFile(file, 'x');
    await expect(makeDirs(file)).rejects.toMatchObject({ code: 'ENOTDIR' });
    await expect(makeDirs(join(file, 'sub', 'deeper'))).rejects.toMatchObject({ code: 'ENOTDIR' });
  });

  it('reports a file in the way as a StoreUnavailableError in one line that names it', async () => {
    const root = await tempDir();
    const file = join(root, 'file');
    await writeFile(file, 'x');
    await expect(makeDirs(file)).rejects.toMatchObject({ name: 'StoreUnavailableError', message: `${file} is not a directory`, path: file });
    const deeper = join(file, 'sub', 'deeper');
    await expect(makeDirs(deeper)).rejects.toMatchObject({
      name: 'StoreUnavailableError',
      message: `cannot create directory ${deeper}: ${file} is not a directory`,
      path: file,
    });
    // The store opens its directory with makeDirs: the same error, not a bare errno.
    await expect(FileEventStore.open(file)).rejects.toMatchObject({ name: 'StoreUnavailableError', message: `${file} is not a directory` });
  });

  // Node's recursive mkdir spins forever on this path; the CLI hung on `--data-dir /proc/x`.
  it.runIf(existsSync('/proc/self'))('fails where a parent exists but refuses new entries (/proc)', async () => {
    await expect(makeDirs('/proc/jetplan-test/sub')).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(FileEventStore.open('/proc/jetplan-test')).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
