/** replaceFile: the file at the path is the old one or the whole new one, never a short new one. */
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { replaceFile } from '../../src/persistence/replaceFile.js';
import { tempDirs } from '../support/tempDirs.js';

// A disk that fills up: a write may store only part of what it was given, without an error.
const shortWrites = vi.hoisted(() => ({ on: false }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs/promises')>();
  return {
    ...fs,
    open: async (...args: Parameters<typeof fs.open>) => {
      const fh = await fs.open(...args);
      if (!shortWrites.on) return fh;
      const writeFile = fh.writeFile.bind(fh);
      const write = fh.write.bind(fh) as (data: string | Uint8Array) => Promise<unknown>;
      return Object.assign(fh, {
        writeFile: (data: string | Uint8Array) => writeFile(typeof data === 'string' ? data.slice(0, data.length >> 1) : data.subarray(0, data.byteLength >> 1)),
        write: (data: string | Uint8Array) => write(typeof data === 'string' ? data.slice(0, data.length >> 1) : data.subarray(0, data.byteLength >> 1)),
      });
    },
  };
});

const tempDir = tempDirs('replace');

describe('replaceFile', () => {
  it('replaces the file whole', async () => {
    const path = join(await tempDir(), 'f');
    await writeFile(path, 'old');
    await replaceFile(path, ['new ', Buffer.from('content')]);
    expect(await readFile(path, 'utf8')).toBe('new content');
    expect(await readdir(join(path, '..'))).toEqual(['f']);
  });

  it('leaves the old file, and no temp file, when the new one was written short', async () => {
    const dir = await tempDir();
    const path = join(dir, 'f');
    await writeFile(path, 'old content');
    shortWrites.on = true;
    try {
      await expect(replaceFile(path, ['new ', Buffer.from('content')])).rejects.toThrow(/wrote \d+ of 11 bytes; .* left as it was/);
    } finally {
      shortWrites.on = false;
    }
    expect(await readFile(path, 'utf8')).toBe('old content');
    expect(await readdir(dir)).toEqual(['f']);
  });
});
