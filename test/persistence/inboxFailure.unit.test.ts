/** FileInbox on a disk that fills up: a put that fails part-way leaves nothing that later puts are glued to. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { FileInbox } from '../../src/persistence/inbox.js';
import { tempDirs } from '../support/tempDirs.js';

// While `on`, an append writes half its line, then fails as a full disk does.
const diskFull = vi.hoisted(() => ({ on: false }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs/promises')>();
  return {
    ...fs,
    open: async (...args: Parameters<typeof fs.open>) => {
      const fh = await fs.open(...args);
      if (!diskFull.on) return fh;
      return Object.assign(fh, {
        appendFile: async (data: string) => {
          await fs.appendFile(args[0] as string, data.slice(0, data.length >> 1));
          throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
        },
      });
    },
  };
});

const tempDir = tempDirs('inbox-full');

describe('FileInbox on a full disk', () => {
  it('cuts a failed put back, so the next put is whole and read back after a reopen', async () => {
    const path = join(await tempDir(), 'executions.log');
    const inbox = await FileInbox.open<string>(path);
    await inbox.put('a', 'A');
    diskFull.on = true;
    try {
      await expect(inbox.put('b', 'B')).rejects.toThrow('ENOSPC');
    } finally {
      diskFull.on = false;
    }
    await inbox.put('c', 'C');
    expect(await readFile(path, 'utf8')).toBe('{"id":"a","value":"A"}\n{"id":"c","value":"C"}\n');
    const reopened = await FileInbox.open<string>(path);
    expect([await reopened.get('a'), await reopened.get('b'), await reopened.get('c')]).toEqual(['A', undefined, 'C']);
  });
});
