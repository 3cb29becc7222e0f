import { describe, expect, it } from 'vitest';
import { isValidationError } from '../../src/errors.js';
import { MemoryEventStore } from '../../src/persistence/memoryEventStore.js';
import { runEventStoreContract, runOutboxContract } from './eventStoreContract.js';
import { makeCommand, makeEvents, uniqueStream } from './fixtures.js';

const factory = async () => {
  const store = new MemoryEventStore();
  return { store, cleanup: () => store.close() };
};

runEventStoreContract('MemoryEventStore', factory);
runOutboxContract('MemoryEventStore', factory);

describe('MemoryEventStore', () => {
  it('checks the expected version even for an empty append', async () => {
    const store = new MemoryEventStore();
    const id = uniqueStream();
    await expect(store.appendToStream(id, [], { expectedVersion: 1 })).rejects.toMatchObject({
      name: 'ConcurrencyError',
    });
  });

  it('rejects an expected version that is not a non-negative integer', async () => {
    const store = new MemoryEventStore();
    const id = uniqueStream();
    for (const expectedVersion of [-1, 1.5, Number.NaN]) {
      const err = await store.appendToStream(id, makeEvents(id, 1), { expectedVersion }).catch((e: unknown) => e);
      expect(isValidationError(err)).toBe(true);
    }
  });

  it('isolates stored commands from callers', async () => {
    const store = new MemoryEventStore();
    const id = uniqueStream();
    const command = makeCommand(id);
    await store.appendToStream(id, makeEvents(id, 1), { expectedVersion: 0, commands: [command] });
    command.causationId = 'mutated';
    const [pending] = await store.pendingCommands();
    (pending as { id: string }).id = 'mutated';
    expect((await store.pendingCommands())[0]).toMatchObject({ id: command.id, causationId: `cause-${command.id}` });
  });

});
