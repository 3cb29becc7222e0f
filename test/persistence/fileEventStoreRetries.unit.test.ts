import { describe, expect, it } from 'vitest';
import { isStoreUnavailableError } from '../../src/errors.js';
import { makeEvents, uniqueStream } from './fixtures.js';
import { failNextSync, fileStores } from './fileStoreSupport.js';

const { openStore } = fileStores('file-retries');

describe('FileEventStore: retries counting appends still being written as landed', () => {
  it('resolves a retry of an append under way only once it is durable, and fails it with that append', async () => {
    const { dir, store } = await openStore();
    const id = uniqueStream();
    const [a, b] = makeEvents(id, 2);
    const spy = await failNextSync(dir);
    try {
      const results = await Promise.allSettled([
        store.appendToStream(id, [a!], { expectedVersion: 'any' }),
        // All landed (a is being written): its outcome. Part landed: the rest, written after it.
        store.appendToStream(id, structuredClone([a!]), { expectedVersion: 0 }),
        store.appendToStream(id, structuredClone([a!, b!]), { expectedVersion: 'any' }),
      ]);
      expect(results.map((r) => r.status === 'rejected' && isStoreUnavailableError(r.reason))).toEqual([true, true, true]);
    } finally {
      spy.mockRestore();
    }
    expect((await store.readStream(id)).exists).toBe(false);
  });

  it('does not take a retry as done before the append it repeats is durable', async () => {
    const { store } = await openStore();
    const id = uniqueStream();
    const [a, b] = makeEvents(id, 2);
    const first = store.appendToStream(id, [a!, b!], { expectedVersion: 0 });
    const retry = store.appendToStream(id, structuredClone([a!, b!]), { expectedVersion: 'any' });
    // The retry resolves after the append it waits on, never with the events still unreadable.
    const order: string[] = [];
    await Promise.all([first.then(() => order.push('first')), retry.then(() => order.push('retry'))]);
    expect(order).toEqual(['first', 'retry']);
    expect(await retry).toEqual({ nextExpectedVersion: 2 });
    expect((await store.readStream(id)).currentVersion).toBe(2);
  });
});
