import { describe, expect, it } from 'vitest';
import { isStoreUnavailableError } from '../../src/errors.js';
import { makeEvents, uniqueStream } from './fixtures.js';
import { failNextSync, fileStores } from './fileStoreSupport.js';

const { openStore } = fileStores('file-queue');

/**
 * Lets the log's flush loop start on the appends made so far (it starts on the next macrotask), so
 * that what is appended next waits in the queue for the following frame.
 */
const nextMacrotask = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('FileEventStore: appends queued behind a frame being written', () => {
  it('keeps the version a queued append reserved when an earlier append becomes durable', async () => {
    const { dir, store } = await openStore();
    const id = uniqueStream();
    const [e1, e2, e3] = makeEvents(id, 3);
    const a = store.appendToStream(id, [e1!], { expectedVersion: 0 });
    await nextMacrotask(); // a's frame is being written: b goes into the next one
    const b = store.appendToStream(id, [e2!], { expectedVersion: 1 });
    await a;
    // b holds version 2 while it is written: a writer still at version 1 is told so.
    const late = await store.appendToStream(id, [e3!], { expectedVersion: 1 }).catch((e: unknown) => e);
    expect(late).toMatchObject({ name: 'ConcurrencyError', expectedVersion: 1, actualVersion: 2 });
    expect(await b).toEqual({ nextExpectedVersion: 2 });
    expect((await store.readStream(id)).events.map((e) => e.id)).toEqual([e1!.id, e2!.id]);
    await store.close();
    const { store: reopened } = await openStore(dir);
    expect((await reopened.readStream(id)).events.map((e) => e.id)).toEqual([e1!.id, e2!.id]);
  });

  it('rejects the appends queued behind a frame whose write fails, rather than leaving them pending', async () => {
    const { dir, store } = await openStore();
    const id = uniqueStream();
    const other = uniqueStream();
    const spy = await failNextSync(dir);
    try {
      const first = store.appendToStream(id, makeEvents(id, 1), { expectedVersion: 0 });
      const firstFailed = expect(first).rejects.toSatisfy(isStoreUnavailableError);
      await nextMacrotask(); // the first frame is being written: the next append waits in the queue
      const queued = store.appendToStream(other, makeEvents(other, 1), { expectedVersion: 0 });
      await firstFailed;
      // Left pending, this would hang until the test times out.
      await expect(queued).rejects.toSatisfy(isStoreUnavailableError);
    } finally {
      spy.mockRestore();
    }
    expect((await store.readStream(id)).exists).toBe(false);
    expect((await store.readStream(other)).exists).toBe(false);
  });
});
