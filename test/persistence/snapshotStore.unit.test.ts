import { tempDirs } from '../support/tempDirs.js';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isStoreUnavailableError } from '../../src/errors.js';
import { FileSnapshotStore, snapshotFileName } from '../../src/persistence/fileSnapshotStore.js';
import { MemorySnapshotStore } from '../../src/persistence/memorySnapshotStore.js';
import type { Snapshot, SnapshotStore } from '../../src/persistence/snapshotStore.js';
import { uniqueStream } from './fixtures.js';

const tempDir = tempDirs('snapshots');

const snapshot = (streamId: string, version: number, lastEventId?: string): Snapshot => ({
  streamId,
  version,
  schema: 1,
  state: { tasks: [{ id: 't1', note: 'ünïcode 🚀' }], cursor: version, nested: { list: [1, 2, 3] } },
  ...(lastEventId === undefined ? {} : { lastEventId }),
});

const backends: Array<[string, () => Promise<SnapshotStore>]> = [
  ['MemorySnapshotStore', async () => new MemorySnapshotStore()],
  ['FileSnapshotStore', async () => new FileSnapshotStore(await tempDir())],
];

describe.each(backends)('%s', (_name, create) => {
  it('loads undefined for a stream without a snapshot', async () => {
    expect(await (await create()).load(uniqueStream())).toBeUndefined();
  });

  it('saves, loads and replaces a snapshot per stream', async () => {
    const store = await create();
    const [a, b] = [uniqueStream(), uniqueStream()];
    await store.save(snapshot(a, 3));
    await store.save(snapshot(b, 7, 'event-7'));
    expect(await store.load(a)).toEqual(snapshot(a, 3));
    await store.save(snapshot(a, 9));
    expect(await store.load(a)).toEqual(snapshot(a, 9));
    // The id of the event it was taken after comes back with it (a load checks it against the log).
    expect(await store.load(b)).toEqual(snapshot(b, 7, 'event-7'));
  });

  it('is not affected by callers mutating saved or loaded snapshots', async () => {
    const store = await create();
    const id = uniqueStream();
    const saved = snapshot(id, 1);
    await store.save(saved);
    (saved.state as { cursor: number }).cursor = 99;
    const loaded = await store.load(id);
    (loaded?.state as { cursor: number }).cursor = 98;
    expect(await store.load(id)).toEqual(snapshot(id, 1));
  });

  it('keeps stream ids with unusual characters apart', async () => {
    const store = await create();
    const ids = ['a/b', 'a%2Fb', '..', '.', 'a.b', 'é 🚀'];
    for (const [i, id] of ids.entries()) await store.save(snapshot(id, i + 1));
    for (const [i, id] of ids.entries()) expect((await store.load(id))?.version).toBe(i + 1);
  });

  it('throws StoreUnavailableError after close', async () => {
    const store = await create();
    await store.close?.();
    const id = uniqueStream();
    expect(isStoreUnavailableError(await store.load(id).catch((e: unknown) => e))).toBe(true);
    expect(isStoreUnavailableError(await store.save(snapshot(id, 1)).catch((e: unknown) => e))).toBe(true);
  });
});

describe('FileSnapshotStore files', () => {
  it('writes one file per stream inside snapshots/, leaving no temp files', async () => {
    const dir = await tempDir();
    const store = new FileSnapshotStore(dir);
    const [a, b] = [uniqueStream(), uniqueStream()];
    await store.save(snapshot(a, 1));
    await store.save(snapshot(a, 2));
    await store.save(snapshot(b, 1));
    await store.save(snapshot('../escape', 1));
    expect((await readdir(join(dir, 'snapshots'))).sort()).toEqual(
      [snapshotFileName(a), snapshotFileName(b), snapshotFileName('../escape')].sort(),
    );
    expect(await readdir(dir)).toEqual(['snapshots']);
  });

  it('survives a new instance on the same directory', async () => {
    const dir = await tempDir();
    const id = uniqueStream();
    await new FileSnapshotStore(dir).save(snapshot(id, 4));
    expect(await new FileSnapshotStore(dir).load(id)).toEqual(snapshot(id, 4));
  });

  it('treats an unreadable or foreign snapshot file as missing (snapshots are a cache)', async () => {
    const dir = await tempDir();
    const store = new FileSnapshotStore(dir);
    const [a, b, c] = [uniqueStream(), uniqueStream(), uniqueStream()];
    await store.save(snapshot(a, 1));
    await writeFile(join(dir, 'snapshots', snapshotFileName(a)), '{"streamId": "');
    await writeFile(join(dir, 'snapshots', snapshotFileName(b)), JSON.stringify(snapshot(c, 1)));
    await writeFile(join(dir, 'snapshots', snapshotFileName(c)), JSON.stringify({ streamId: c, version: -1 }));
    expect(await store.load(a)).toBeUndefined();
    expect(await store.load(b)).toBeUndefined();
    expect(await store.load(c)).toBeUndefined();
  });

  it('reports read errors other than a missing file', async () => {
    const dir = await tempDir();
    const store = new FileSnapshotStore(dir);
    const id = uniqueStream();
    await store.save(snapshot(id, 1));
    const { mkdir } = await import('node:fs/promises');
    const other = uniqueStream();
    await mkdir(join(dir, 'snapshots', snapshotFileName(other)));
    await expect(store.load(other)).rejects.toMatchObject({ code: 'EISDIR' });
    await expect(store.save(snapshot(other, 1))).rejects.toMatchObject({ code: expect.any(String) });
    expect((await readdir(join(dir, 'snapshots'))).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});
