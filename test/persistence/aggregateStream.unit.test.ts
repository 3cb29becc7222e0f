import { describe, expect, it } from 'vitest';
import { aggregateStream, isOutboxStore } from '../../src/persistence/eventStore.js';
import { MemoryEventStore } from '../../src/persistence/memoryEventStore.js';
import { makeEvent } from './fixtures.js';

describe('aggregateStream', () => {
  it('folds a stream from the start or from a position, and says whether it exists', async () => {
    const store = new MemoryEventStore();
    const events = ['a', 'b', 'c'].map((reason) => makeEvent('agg', { payload: { type: 'InputRejected', data: { reason } } }));
    await store.appendToStream('agg', events, { expectedVersion: 0 });
    const fold = { evolve: (s: string[], e: { data: unknown }) => [...s, (e.data as { reason: string }).reason], initialState: () => [] as string[] };

    expect(await aggregateStream(store, 'agg', fold)).toEqual({ state: ['a', 'b', 'c'], currentVersion: 3, exists: true });
    expect((await aggregateStream(store, 'agg', { ...fold, from: 2 })).state).toEqual(['b', 'c']);
    expect(await aggregateStream(store, 'none', fold)).toEqual({ state: [], currentVersion: 0, exists: false });
  });

  it('recognises an outbox store', () => {
    expect(isOutboxStore(new MemoryEventStore())).toBe(true);
    expect(isOutboxStore({ appendToStream() {} })).toBe(false);
    expect(isOutboxStore(undefined)).toBe(false);
  });
});
