/** What createEmbeddedRuntime refuses at start, and how. */
import { existsSync } from 'node:fs';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createEmbeddedRuntime, type EmbeddedRuntimeOptions } from '../../src/runtime/embeddedRuntime.js';
import { tempDirs } from '../support/tempDirs.js';

const tempDir = tempDirs('runtime-options');

describe('createEmbeddedRuntime options', () => {
  it('refuses a snapshotEvery that is not a positive integer, before the data directory is made', async () => {
    const dataDir = join(await tempDir(), 'data');
    // Each of these used to be taken and quietly switch snapshots off.
    for (const snapshotEvery of [0, -5, Number.NaN, 2.5]) {
      await expect(createEmbeddedRuntime({ dataDir, snapshotEvery })).rejects.toMatchObject({
        name: 'ValidationError',
        message: `snapshotEvery must be a positive integer, got ${snapshotEvery}`,
      });
    }
    expect(existsSync(dataDir)).toBe(false);
  });

  // A JavaScript caller can pass these; each used to be taken and fail later, deep inside, with a
  // TypeError (a logger without `warn` even crashed the process from the outbox relay's retry).
  it.each([
    [{ logger: {} }, /^logger must be a pino-like logger \(an object with methods debug, info, warn, error and isLevelEnabled\), got an object without debug/],
    [{ clock: 5 }, /^clock must be a function, got 5$/],
    [{ newId: 'x' }, /^newId must be a function, got "x"$/],
    [{ decideDeps: {} }, /^decideDeps must be an object with methods plan, countTokens and compactor\.compact, got an object without plan/],
    [{ decideDeps: { plan: () => [], countTokens: () => 0 } }, /^decideDeps must be .*, got an object without compactor\.compact$/],
    [{ timers: { set: () => 1 } }, /^timers must be an object with methods set and clear, got an object without clear$/],
  ])('refuses %o with a ValidationError naming it, before the data directory is made', async (bad, message) => {
    const dataDir = join(await tempDir(), 'data');
    const options = { dataDir, ...bad } as unknown as EmbeddedRuntimeOptions;
    await expect(createEmbeddedRuntime(options)).rejects.toMatchObject({ name: 'ValidationError', message: expect.stringMatching(message) });
    expect(existsSync(dataDir)).toBe(false);
  });

  it('saves snapshots at a snapshotEvery of 1', async () => {
    const dataDir = await tempDir();
    const runtime = await createEmbeddedRuntime({ dataDir, snapshotEvery: 1, fsync: false });
    try {
      await runtime.planner.handle('s1', { type: 'SubmitInput', text: 'Fetch the data.' });
    } finally {
      await runtime.close();
    }
    expect(await readdir(join(dataDir, 'snapshots'))).toEqual(['s1.json']);
  });

  it('refuses a dataDir that is a file with a one-line StoreUnavailableError', async () => {
    const file = join(await tempDir(), 'not-a-dir');
    await writeFile(file, 'x');
    await expect(createEmbeddedRuntime({ dataDir: file })).rejects.toMatchObject({
      name: 'StoreUnavailableError',
      message: `${file} is not a directory`,
    });
    const below = join(file, 'data');
    await expect(createEmbeddedRuntime({ dataDir: below })).rejects.toMatchObject({
      name: 'StoreUnavailableError',
      message: `cannot create directory ${below}: ${file} is not a directory`,
    });
  });
});
