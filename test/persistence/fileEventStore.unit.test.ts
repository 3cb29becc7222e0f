import { spawn, spawnSync } from 'node:child_process';
import { appendFile, mkdir, mkdtemp, open, readdir, readFile, rm, stat, truncate, unlink, link, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { isCorruptLogError, isStoreUnavailableError } from '../../src/errors.js';
import { FileEventStore } from '../../src/persistence/fileEventStore.js';
import { ReadOnlyFileEventStore } from '../../src/persistence/readOnlyFileEventStore.js';
import { acquireDirLock } from '../../src/persistence/dirLock.js';
import { encodeFrame, FRAME_HEADER_BYTES } from '../../src/persistence/fileLog.js';
import { runEventStoreContract, runOutboxContract } from './eventStoreContract.js';
import type { NewEvent } from '../../src/protocol/events.js';
import { makeCommand, makeEvent, makeEvents, sequenced, uniqueStream } from './fixtures.js';

const dirs: string[] = [];
const stores: FileEventStore[] = [];

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'jetplan-file-store-'));
  dirs.push(dir);
  return dir;
}

async function openStore(dir: string, options?: { fsync?: boolean }): Promise<FileEventStore> {
  const store = await FileEventStore.open(dir, options);
  stores.push(store);
  return store;
}

afterEach(async () => {
  for (const store of stores.splice(0)) await store.close();
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

const factory = async () => {
  const dir = await mkdtemp(join(tmpdir(), 'jetplan-file-contract-'));
  const store = await FileEventStore.open(dir);
  return {
    store,
    cleanup: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
};

runEventStoreContract('FileEventStore', factory);
runOutboxContract('FileEventStore', factory);

const logPath = (dir: string) => join(dir, 'events.log');

/** Opens a store in a new dir, appends `count` one-event records to one stream, closes it; `ends` are record end offsets. */
async function dirWithRecords(count: number): Promise<{ dir: string; id: string; ends: number[] }> {
  const dir = await tempDir();
  const store = await FileEventStore.open(dir);
  const id = uniqueStream();
  const ends: number[] = [];
  for (let i = 0; i < count; i++) {
    await store.appendToStream(id, [makeEvent(id)], { expectedVersion: i });
    ends.push(store.stats.bytes);
  }
  await store.close();
  return { dir, id, ends };
}

describe('FileEventStore persistence', () => {
  it('restores events, versions, streams and the outbox after close and reopen', async () => {
    const dir = await tempDir();
    const first = await FileEventStore.open(dir);
    const [a, b] = [uniqueStream(), uniqueStream()];
    const [eventsA, eventsB] = [makeEvents(a, 3), makeEvents(b, 1)];
    const [c1, c2, c3] = [makeCommand(a), makeCommand(a), makeCommand(b)];
    await first.appendToStream(a, eventsA, { expectedVersion: 0, commands: [c1, c2] });
    await first.appendToStream(b, eventsB, { expectedVersion: 0, commands: [c3] });
    await first.markDelivered([c1.id]);
    await first.close();

    const second = await openStore(dir);
    expect(second.recoveredTailBytes).toBe(0);
    expect((await second.readStream(a)).events).toEqual(sequenced(eventsA));
    expect(await second.readStream(b)).toEqual({ events: sequenced(eventsB), currentVersion: 1, exists: true });
    expect((await second.listStreams()).sort()).toEqual([a, b].sort());
    expect(await second.pendingCommands()).toEqual([
      { ...c2, storedAtVersion: 3 },
      { ...c3, storedAtVersion: 1 },
    ]);
    await expect(second.appendToStream(a, makeEvents(a, 1), { expectedVersion: 2 })).rejects.toMatchObject({
      name: 'ConcurrencyError',
      actualVersion: 3,
    });
    expect(await second.appendToStream(a, makeEvents(a, 1), { expectedVersion: 3 })).toEqual({ nextExpectedVersion: 4 });
  });

  it('persists with fsync disabled too', async () => {
    const dir = await tempDir();
    const first = await FileEventStore.open(dir, { fsync: false });
    const id = uniqueStream();
    const events = makeEvents(id, 2);
    await first.appendToStream(id, events, { expectedVersion: 0 });
    await first.close();
    const second = await openStore(dir, { fsync: false });
    expect((await second.readStream(id)).events).toEqual(sequenced(events));
  });

  it('writes nothing for delivery marks of commands that are not pending', async () => {
    const dir = await tempDir();
    const store = await openStore(dir);
    await store.markDelivered(['unknown']);
    expect(store.stats).toEqual({ appends: 0, flushes: 0, bytes: 0 });
  });

  it('rejects events that cannot be serialised without reserving a version', async () => {
    const store = await openStore(await tempDir());
    const id = uniqueStream();
    const bad = { ...makeEvent(id), data: { reason: 'x', big: 1n } } as unknown as NewEvent;
    await expect(store.appendToStream(id, [bad], { expectedVersion: 0 })).rejects.toThrow(TypeError);
    expect(await store.appendToStream(id, makeEvents(id, 1), { expectedVersion: 0 })).toEqual({ nextExpectedVersion: 1 });
  });

  it('waits for in-flight appends on close', async () => {
    const dir = await tempDir();
    const store = await FileEventStore.open(dir);
    const ids = Array.from({ length: 10 }, () => uniqueStream());
    const appends = ids.map((id) => store.appendToStream(id, makeEvents(id, 1), { expectedVersion: 0 }));
    await store.close();
    await expect(Promise.all(appends)).resolves.toHaveLength(10);
    const reopened = await openStore(dir);
    expect((await reopened.listStreams()).sort()).toEqual([...ids].sort());
  });

});

describe('FileEventStore recovery', () => {
  it('cuts a torn tail, keeps complete records and accepts appends that survive another reopen', async () => {
    const { dir, id, ends } = await dirWithRecords(3);
    await truncate(logPath(dir), (ends[2] as number) - 5);
    const before = await readFile(logPath(dir));
    const store = await FileEventStore.open(dir);
    expect(store.recoveredTailBytes).toBe((ends[2] as number) - 5 - (ends[1] as number));
    expect((await stat(logPath(dir))).size).toBe(ends[1]);
    // The cut bytes are set aside, not destroyed.
    const kept = (await readdir(dir)).filter((f) => f.startsWith(`events.log.tail-${ends[1]}-`));
    expect(kept).toHaveLength(1);
    expect(await readFile(join(dir, kept[0]!))).toEqual(before.subarray(ends[1] as number));
    expect((await store.readStream(id)).currentVersion).toBe(2);
    const next = makeEvent(id);
    expect(await store.appendToStream(id, [next], { expectedVersion: 2 })).toEqual({ nextExpectedVersion: 3 });
    await store.close();
    const reopened = await openStore(dir);
    expect(reopened.recoveredTailBytes).toBe(0);
    const read = await reopened.readStream(id);
    expect(read.currentVersion).toBe(3);
    expect(read.events[2]).toEqual({ ...next, sequence: 3 });
  });

  it('cuts a tail holding only part of a record header', async () => {
    const { dir, id, ends } = await dirWithRecords(2);
    await truncate(logPath(dir), (ends[0] as number) + FRAME_HEADER_BYTES - 3);
    const store = await openStore(dir);
    expect((await store.readStream(id)).currentVersion).toBe(1);
    expect((await stat(logPath(dir))).size).toBe(ends[0]);
  });

  it('cuts garbage bytes after the last record', async () => {
    const { dir, id, ends } = await dirWithRecords(3);
    await appendFile(logPath(dir), Buffer.from([0xfe, 0x4a, 0x50, 0x4c, 0, 0, 0, 1, 9, 9, 9, 9, 0x7b]));
    await appendFile(logPath(dir), Buffer.alloc(4096));
    const store = await openStore(dir);
    expect((await store.readStream(id)).currentVersion).toBe(3);
    expect((await stat(logPath(dir))).size).toBe(ends[2]);
  });

  it('throws CorruptLogError with the offset for a bad record followed by good ones, and truncates nothing', async () => {
    const { dir, ends } = await dirWithRecords(3);
    const handle = await open(logPath(dir), 'r+');
    const at = (ends[0] as number) + FRAME_HEADER_BYTES + 10; // inside the second record's payload
    await handle.write(Buffer.from('#'), 0, 1, at);
    await handle.close();
    const err = await FileEventStore.open(dir).catch((e: unknown) => e);
    expect(isCorruptLogError(err)).toBe(true);
    expect((err as Error).message).toContain(`byte offset ${ends[0]}`);
    expect((await stat(logPath(dir))).size).toBe(ends[2]);
    // The failed open released its lock: the next attempt reports the corruption again.
    expect(isCorruptLogError(await FileEventStore.open(dir).catch((e: unknown) => e))).toBe(true);
  });

  it('throws CorruptLogError for an intact record whose content is not a valid entry', async () => {
    for (const payload of ['not json', '[{"t":"a","s":"x","e":[{"id":1}],"c":[]}]', '{"t":"d"}']) {
      const { dir } = await dirWithRecords(1);
      await appendFile(logPath(dir), encodeFrame(payload));
      expect(isCorruptLogError(await FileEventStore.open(dir).catch((e: unknown) => e))).toBe(true);
    }
  });

  it('throws CorruptLogError for a record that breaks a stream’s sequence', async () => {
    const { dir, id } = await dirWithRecords(1);
    const gap = { ...makeEvent(id), sequence: 5 };
    await appendFile(logPath(dir), encodeFrame(JSON.stringify([{ t: 'a', s: id, e: [gap], c: [] }])));
    const err = await FileEventStore.open(dir).catch((e: unknown) => e);
    expect(isCorruptLogError(err)).toBe(true);
    expect((err as Error).message).toContain('does not follow 1');
  });

  it('returns exactly the stored envelope, keeping fields it does not know', async () => {
    const { dir, id } = await dirWithRecords(1);
    const extra = { ...makeEvent(id), sequence: 2, futureField: { x: 1 } };
    await appendFile(logPath(dir), encodeFrame(JSON.stringify([{ t: 'a', s: id, e: [extra], c: [] }])));
    const store = await openStore(dir);
    expect((await store.readStream(id, { from: 2 })).events).toEqual([extra]);
  });
});

describe('FileEventStore group commit', () => {
  it('writes 50 concurrent appends with fewer than 50 flushes', async () => {
    const dir = await tempDir();
    const store = await openStore(dir);
    const ids = Array.from({ length: 50 }, () => uniqueStream());
    await Promise.all(ids.map((id) => store.appendToStream(id, makeEvents(id, 1), { expectedVersion: 0 })));
    const { appends, flushes, bytes } = store.stats;
    expect(appends).toBe(50);
    expect(flushes).toBeLessThan(50);
    expect(flushes).toBeGreaterThan(0);
    expect(bytes).toBe((await stat(logPath(dir))).size);
  });

  it('keeps batching while sessions append sequentially in parallel', async () => {
    const store = await openStore(await tempDir());
    const ids = Array.from({ length: 20 }, () => uniqueStream());
    await Promise.all(
      ids.map(async (id) => {
        for (let v = 0; v < 5; v++) await store.appendToStream(id, makeEvents(id, 1), { expectedVersion: v });
      }),
    );
    expect(store.stats.appends).toBe(100);
    // Ideally 5 (one per round); far fewer than the 10 of batches alternating 1 and 19.
    expect(store.stats.flushes).toBeLessThanOrEqual(7);
  });

  it('fails the batch and poisons the store when a sync fails, without exposing the failed events', async () => {
    const dir = await tempDir();
    const store = await openStore(dir);
    const id = uniqueStream();
    await store.appendToStream(id, makeEvents(id, 1), { expectedVersion: 0 });
    const probe = await open(join(dir, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as { datasync: () => Promise<void> };
    await probe.close();
    const spy = vi.spyOn(proto, 'datasync').mockRejectedValueOnce(new Error('EIO: simulated'));
    const other = uniqueStream();
    try {
      const failed = await Promise.allSettled([
        store.appendToStream(id, makeEvents(id, 1), { expectedVersion: 1 }),
        store.appendToStream(other, makeEvents(other, 1), { expectedVersion: 0 }),
      ]);
      expect(failed.map((r) => r.status === 'rejected' && isStoreUnavailableError(r.reason))).toEqual([true, true]);
    } finally {
      spy.mockRestore();
    }
    expect((await store.readStream(id)).currentVersion).toBe(1);
    const later = await store.appendToStream(id, makeEvents(id, 1), { expectedVersion: 1 }).catch((e: unknown) => e);
    expect(isStoreUnavailableError(later)).toBe(true);
    expect((later as Error).message).toContain('reopen');
  });
});

describe('FileEventStore directory lock', () => {
  it('refuses a second open of a directory in use and allows it after close', async () => {
    const dir = await tempDir();
    const first = await FileEventStore.open(dir);
    const err = await FileEventStore.open(dir).catch((e: unknown) => e);
    expect(isStoreUnavailableError(err)).toBe(true);
    expect((err as Error).message).toContain(`in use by pid ${process.pid}`);
    expect((await readFile(join(dir, 'LOCK'), 'utf8')).trim()).toBe(String(process.pid));
    await first.close();
    await expect(stat(join(dir, 'LOCK'))).rejects.toMatchObject({ code: 'ENOENT' });
    await openStore(dir);
  });

  it('takes over a lock holding our own pid that this process does not hold (a restart that got the same pid)', async () => {
    // In a container node is often PID 1 on every start: the crashed predecessor's LOCK holds it.
    const dir = await tempDir();
    await writeFile(join(dir, 'LOCK'), `${process.pid}\n`);
    const store = await FileEventStore.open(dir);
    expect((await readFile(join(dir, 'LOCK'), 'utf8')).trim()).toBe(String(process.pid));
    // Now held by this process: a second open is refused, as for any live holder.
    await expect(FileEventStore.open(dir)).rejects.toThrow(`in use by pid ${process.pid}`);
    await store.close();
    await expect(stat(join(dir, 'LOCK'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('clears a takeover lock holding our own pid left by an earlier process', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'LOCK'), `${process.pid}\n`);
    await writeFile(join(dir, 'LOCK.takeover'), `${process.pid}\n`);
    await expect(acquireDirLock(dir)).rejects.toThrow(/being locked concurrently/); // clears it
    const release = await acquireDirLock(dir);
    await release();
    expect(await readdir(dir)).toEqual([]);
  });

  it('takes over a stale lock left by a dead process', async () => {
    const dir = await tempDir();
    const child = spawnSync(process.execPath, ['-e', '']);
    expect(child.pid).toBeGreaterThan(0);
    await writeFile(join(dir, 'LOCK'), `${child.pid}\n`);
    await openStore(dir);
    expect((await readFile(join(dir, 'LOCK'), 'utf8')).trim()).toBe(String(process.pid));
  });

  it('removes the lock attempts of dead processes (killed before cleaning up), not those of live ones', async () => {
    const dir = await tempDir();
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    await writeFile(join(dir, `LOCK.${dead}.0badc0de.tmp`), `${dead}\n`);
    const live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)']);
    await writeFile(join(dir, `LOCK.${live.pid}.0a0a0a0a.tmp`), `${live.pid}\n`); // a live one, mid-attempt
    // Our own pid, not one of our attempts: left by an earlier process that had it (PID 1 restarted).
    await writeFile(join(dir, `LOCK.${process.pid}.0b0b0b0b.tmp`), `${process.pid}\n`);
    try {
      const release = await acquireDirLock(dir);
      expect((await readdir(dir)).sort()).toEqual(['LOCK', `LOCK.${live.pid}.0a0a0a0a.tmp`]);
      await release();
    } finally {
      live.kill();
    }
  });

  it('fails with a StoreUnavailableError naming it, and leaves no files, when LOCK is not a file', async () => {
    const dir = await tempDir();
    await mkdir(join(dir, 'LOCK'));
    await expect(FileEventStore.open(dir)).rejects.toSatisfy(
      (err) => isStoreUnavailableError(err) && /LOCK is not a lock file \(it is not a regular file\): remove it if no jetplan uses the directory$/.test(err.message),
    );
    expect(await readdir(dir)).toEqual(['LOCK']);
  });

  it('refuses an events.log that is a directory with a StoreUnavailableError, releasing the lock', async () => {
    const dir = await tempDir();
    await mkdir(join(dir, 'events.log'));
    await expect(FileEventStore.open(dir)).rejects.toSatisfy(
      (err) => isStoreUnavailableError(err) && /events\.log is a directory, not an event log: move it away if it is not jetplan's$/.test(err.message),
    );
    expect(await readdir(dir)).toEqual(['events.log']);
  });

  it('two processes taking over one stale lock: the one that loses the race fails and leaves the winner its lock', async () => {
    const dir = await tempDir();
    const dead = spawnSync(process.execPath, ['-e', '']);
    await writeFile(join(dir, 'LOCK'), `${dead.pid}\n`);
    // Between our finding LOCK stale and taking it over, another process (our parent: alive)
    // takes it over first, as acquireDirLock does: its temp file, the stale one removed, a link.
    const winner = process.ppid;
    const err = await acquireDirLock(dir, {
      beforeTakeover: async () => {
        await writeFile(join(dir, 'winner.tmp'), `${winner}\n`);
        await unlink(join(dir, 'LOCK'));
        await link(join(dir, 'winner.tmp'), join(dir, 'LOCK'));
        await unlink(join(dir, 'winner.tmp'));
      },
    }).catch((e: unknown) => e);
    expect(isStoreUnavailableError(err)).toBe(true);
    expect((err as Error).message).toContain(`in use by pid ${winner}`);
    expect((await readFile(join(dir, 'LOCK'), 'utf8')).trim()).toBe(String(winner));
    expect(await readdir(dir)).toEqual(['LOCK']); // no takeover or temp file left behind
  });

  it('a takeover under way in a live process fails this one; one left by a dead process is cleared', async () => {
    const dir = await tempDir();
    const dead = spawnSync(process.execPath, ['-e', '']);
    await writeFile(join(dir, 'LOCK'), `${dead.pid}\n`);
    await writeFile(join(dir, 'LOCK.takeover'), `${process.ppid}\n`);
    const busy = await acquireDirLock(dir).catch((e: unknown) => e);
    expect((busy as Error).message).toContain('being locked concurrently');
    expect((await readFile(join(dir, 'LOCK'), 'utf8')).trim()).toBe(String(dead.pid)); // untouched

    await writeFile(join(dir, 'LOCK.takeover'), `${dead.pid}\n`);
    await expect(acquireDirLock(dir)).rejects.toThrow(/being locked concurrently/); // clears it
    const release = await acquireDirLock(dir);
    expect((await readFile(join(dir, 'LOCK'), 'utf8')).trim()).toBe(String(process.pid));
    await release();
    expect(await readdir(dir)).toEqual([]);
  });

  it('takes over an unreadable lock file', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'LOCK'), '');
    await openStore(dir);
    expect((await readFile(join(dir, 'LOCK'), 'utf8')).trim()).toBe(String(process.pid));
  });
});

describe('ReadOnlyFileEventStore', () => {
  it('reads the log without its lock, leaves a torn tail in place and refuses appends', async () => {
    const dir = await tempDir();
    const writer = await openStore(dir);
    const stream = uniqueStream();
    await writer.appendToStream(stream, makeEvents(stream, 3), { expectedVersion: 0 });
    // A writer mid-append: half a frame at the end of the log.
    const path = join(dir, 'events.log');
    const frame = encodeFrame(JSON.stringify({ any: 'thing' }));
    await appendFile(path, frame.subarray(0, FRAME_HEADER_BYTES + 2));
    const size = (await stat(path)).size;

    const reader = await ReadOnlyFileEventStore.open(dir);
    expect((await reader.readStream(stream)).events.map((e) => e.sequence)).toEqual([1, 2, 3]);
    expect(await reader.listStreams()).toEqual([stream]);
    const latest: unknown[] = [];
    for await (const e of reader.latestEvents()) latest.push(e);
    const [last] = (await reader.readStream(stream, { last: 1 })).events;
    expect(latest).toEqual([{ streamId: stream, type: last!.type, timestamp: last!.timestamp }]); // the torn tail left out
    expect((await stat(path)).size).toBe(size); // never written
    expect(reader.omittedTailBytes).toBe(FRAME_HEADER_BYTES + 2);
    await expect(reader.appendToStream(stream, [makeEvent(stream)], { expectedVersion: 3 })).rejects.toSatisfy(isStoreUnavailableError);
    await reader.close();
    await expect(reader.readStream(stream)).rejects.toSatisfy(isStoreUnavailableError);
    // A directory without a log holds no sessions.
    expect(await (await ReadOnlyFileEventStore.open(await tempDir())).listStreams()).toEqual([]);
  });
});
