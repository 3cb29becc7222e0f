import { describe, expect, it, vi } from 'vitest';
import { Planner } from '../../src/actors/planner.js';
import { SessionRepository, type SessionRepositoryOptions } from '../../src/actors/sessionRepository.js';
import { STATE_SCHEMA, initialSessionState, serializeState } from '../../src/machines/sessionState.js';
import { statusOf } from '../../src/machines/sessionQueries.js';
import { silentLogger } from '../../src/observability/logger.js';
import type { EventStore, ReadOptions } from '../../src/persistence/eventStore.js';
import { MemoryEventStore } from '../../src/persistence/memoryEventStore.js';
import { MemorySnapshotStore } from '../../src/persistence/memorySnapshotStore.js';
import { defaultDecideDeps } from '../../src/runtime/embeddedRuntime.js';
import { latch } from '../support/waiting.js';

const submit = { type: 'SubmitInput' as const, text: '- Fetch the data\n- Summarise the results' };

/** A store whose reads are recorded, a snapshot store, and a planner to write real sessions. */
function setup(options: Partial<SessionRepositoryOptions> = {}, idPrefix = 'm') {
  const store = new MemoryEventStore();
  const reads: Array<{ id: string; options: ReadOptions | undefined }> = [];
  const read = store.readStream.bind(store);
  store.readStream = (id, o) => {
    reads.push({ id, options: o });
    return read(id, o);
  };
  const snapshots = new MemorySnapshotStore();
  const repository = new SessionRepository({ store, snapshots, ...options });
  let n = 0;
  const planner = new Planner({
    store,
    repository,
    decideDeps: defaultDecideDeps(),
    effects: { perform: () => {} },
    clock: () => 1,
    newId: () => `${idPrefix}${++n}`,
    logger: silentLogger,
  });
  /** Applies `count` inputs: a submit, then rejected inputs (one event each). */
  async function write(sessionId: string, count: number) {
    await planner.handle(sessionId, submit);
    for (let i = 1; i < count; i++) await planner.handle(sessionId, { type: 'InvalidInput', reason: `r${i}` });
  }
  return { store, reads, snapshots, repository, planner, write };
}

describe('SessionRepository', () => {
  it('loads a session that has no events as the initial state', async () => {
    const { repository } = setup();
    const state = await repository.load('new');
    expect(state.version).toBe(0);
    expect(serializeState(state)).toEqual(serializeState(initialSessionState('new')));
    expect(statusOf(state)).toBe('idle');
  });

  it('folds the log from scratch when nothing is cached', async () => {
    const { store, write } = setup();
    await write('s1', 3); // 3 + 2 events
    const fresh = new SessionRepository({ store });
    const state = await fresh.load('s1');
    expect(state.version).toBe(5);
    expect(statusOf(state)).toBe('active');
    expect(state.recentInputs).toEqual(['m1', 'm2', 'm3']);
  });

  it('serves a cached session without reading the store', async () => {
    const { store, reads } = setup();
    const repository = new SessionRepository({ store });
    const a = await repository.load('s1');
    const count = reads.length;
    const b = await repository.load('s1');
    expect(b).toBe(a);
    expect(reads.length).toBe(count);
  });

  it('saves a snapshot each time the version crosses a multiple of snapshotEvery', async () => {
    const { snapshots, write } = setup({ snapshotEvery: 4 });
    const save = vi.spyOn(snapshots, 'save');
    await write('s1', 1); // v3: no multiple of 4 crossed
    expect(save).not.toHaveBeenCalled();
    await write('s1', 3); // a second submit (TasksPlanned, v4) then two rejections (v5, v6)
    expect(save.mock.calls.map(([s]) => s.version)).toEqual([4]);
    const snap = await snapshots.load('s1');
    expect(snap).toMatchObject({ streamId: 's1', schema: STATE_SCHEMA, version: 4 });
  });

  it('snapshot crossing is computed from the previous version, not exact multiples', async () => {
    const snapshots = new MemorySnapshotStore();
    const save = vi.spyOn(snapshots, 'save');
    const repository = new SessionRepository({ store: new MemoryEventStore(), snapshots, snapshotEvery: 10 });
    const at = (version: number) => ({ ...initialSessionState('s'), version });
    await repository.committed(8, at(12)); // crosses 10
    await repository.committed(12, at(19)); // does not cross 20
    await repository.committed(19, at(20)); // reaches 20
    expect(save.mock.calls.map(([s]) => s.version)).toEqual([12, 20]);
    // Without a snapshot store, committed only caches.
    const plain = new SessionRepository({ store: new MemoryEventStore(), snapshotEvery: 1 });
    await plain.committed(0, at(5));
    expect((await plain.load('s')).version).toBe(5);
  });

  it('loads snapshot plus tail, equal to a rebuild from the log', async () => {
    const { store, snapshots, write, reads } = setup({ snapshotEvery: 3 });
    await write('s1', 6); // versions 3..8; snapshot at 3 and 6
    const snap = await snapshots.load('s1');
    expect(snap?.version).toBe(6);
    const fresh = new SessionRepository({ store, snapshots });
    reads.length = 0;
    const loaded = await fresh.load('s1');
    // One read from the snapshot's version on: its own event (the head check) and the tail after it.
    expect(reads.map((r) => r.options)).toEqual([{ from: 6 }]);
    const { state: rebuilt, exists } = await fresh.rebuild('s1');
    expect(exists).toBe(true);
    expect(loaded.version).toBe(8);
    expect(serializeState(loaded)).toEqual(serializeState(rebuilt));
  });

  it('ignores a snapshot at another schema', async () => {
    const { store, snapshots, write } = setup();
    await write('s1', 2);
    await snapshots.save({ streamId: 's1', version: 4, schema: STATE_SCHEMA + 1, state: { garbage: true } });
    const loaded = await new SessionRepository({ store, snapshots }).load('s1');
    const { state } = await new SessionRepository({ store }).rebuild('s1');
    expect(loaded.version).toBe(4);
    expect(serializeState(loaded)).toEqual(serializeState(state));
  });

  it('ignores a snapshot whose version is no event\'s, or whose state is of another version or session', async () => {
    const { store, snapshots, write } = setup({ snapshotEvery: 2 });
    await write('s1', 2); // v4, snapshot at 4
    const good = (await snapshots.load('s1'))!;
    const { state } = await new SessionRepository({ store }).rebuild('s1');
    for (const bad of [{ version: -1 }, { version: 1.5 }, { version: 2 }, { streamId: 's1', state: { ...(good.state as object), sessionId: 's2' } }]) {
      await snapshots.save({ ...good, ...bad, lastEventId: undefined });
      const loaded = await new SessionRepository({ store, snapshots }).load('s1');
      expect(serializeState(loaded), JSON.stringify(bad).slice(0, 40)).toEqual(serializeState(state));
    }
  });

  it('ignores a snapshot ahead of the log', async () => {
    const { store, snapshots, write } = setup({ snapshotEvery: 2 });
    await write('s1', 2); // v4, snapshot at 4
    expect((await snapshots.load('s1'))?.version).toBe(4);
    // The log is replaced by a shorter one: the snapshot is now ahead of it.
    const shortStore = new MemoryEventStore();
    const { events } = await store.readStream('s1', { to: 3 });
    await shortStore.appendToStream('s1', events, { expectedVersion: 0 });
    const loaded = await new SessionRepository({ store: shortStore, snapshots }).load('s1');
    expect(loaded.version).toBe(3);
    // A snapshot for a stream with no events at all is ignored too.
    const none = await new SessionRepository({ store: new MemoryEventStore(), snapshots }).load('s1');
    expect(none.version).toBe(0);
  });

  it('ignores a snapshot of an earlier log under the same id (purged, id reused), even once the new log is as long', async () => {
    const { store, reads, snapshots, write } = setup({ snapshotEvery: 2 });
    await write('s1', 2); // v4, snapshot at 4
    const old = await snapshots.load('s1');
    expect(old?.version).toBe(4);
    // The log is purged (a fresh store) and the id reused: a new session of other events, as long.
    const other = setup({ snapshotEvery: 1000 }, 'other-');
    await other.planner.handle('s1', { type: 'SubmitInput', text: '- Draft the reply\n- Send it' });
    for (let i = 1; i < 4; i++) await other.planner.handle('s1', { type: 'InvalidInput', reason: `other ${i}` });
    const { state: truth } = await new SessionRepository({ store: other.store }).rebuild('s1');
    expect(truth.version).toBeGreaterThanOrEqual(4);
    const loaded = await new SessionRepository({ store: other.store, snapshots }).load('s1');
    expect(serializeState(loaded)).toEqual(serializeState(truth));
    // A snapshot saved before event ids were recorded is still used (checked by version alone).
    const { lastEventId, ...legacy } = old!;
    expect(lastEventId).toBeDefined();
    await snapshots.save(legacy);
    reads.length = 0;
    const fromLegacy = await new SessionRepository({ store, snapshots }).load('s1');
    expect(fromLegacy.version).toBe(4);
    expect(reads.map((r) => r.options)).toEqual([{ from: 4 }]);
  });

  it('forget makes the next load reread the log', async () => {
    const { store, reads, write, repository } = setup();
    await write('s1', 1);
    const cached = await repository.load('s1');
    const before = reads.length;
    repository.forget('s1');
    repository.forget('never-loaded');
    const reloaded = await repository.load('s1');
    expect(reads.length).toBeGreaterThan(before);
    expect(reloaded).not.toBe(cached);
    expect(reloaded.version).toBe(cached.version);
    expect(serializeState(reloaded)).toEqual(serializeState((await new SessionRepository({ store }).rebuild('s1')).state));
  });

  /** A repository whose store answers reads with what the log held when they began, but only once released. */
  function slowRepository(store: EventStore) {
    const reading = latch();
    const released = latch();
    const slow = {
      readStream: async (id: string, o?: ReadOptions) => {
        const result = await store.readStream(id, o);
        reading.release();
        await released.promise;
        return result;
      },
    } as unknown as EventStore;
    return { repository: new SessionRepository({ store: slow }), reading, released };
  }

  it.each([
    ['an open session', { type: 'InvalidInput' as const, reason: 'not understood' }],
    ['a session that ended', { type: 'CancelSession' as const, reason: 'not needed' }],
  ])('a load that finishes after a newer commit never replaces the committed state with the older one it read: %s', async (_, input) => {
    const { store, planner } = setup();
    await planner.handle('s', submit);
    const { repository, reading, released } = slowRepository(store);
    // Outside the session's queue (the backlog read at start, a recovery pass): it has read the log.
    const loading = repository.load('s');
    await reading.promise;
    // Meanwhile the planner commits a newer state of the session.
    const newer = (await planner.handle('s', input)).state;
    await repository.committed(newer.version - 1, newer);
    released.release();
    const older = await loading;
    expect(older.version).toBeLessThan(newer.version);
    // The next decision starts from the newer state (from memory, or for an ended session from
    // its log read again), not from the stale one.
    expect((await repository.load('s')).version).toBe(newer.version);
  });

  it('refuses a snapshotEvery or cacheSize that is not a positive integer, naming it', () => {
    const store = new MemoryEventStore();
    // Each of these used to be taken and quietly switch snapshots (or the cache's bound) off.
    for (const snapshotEvery of [0, -5, Number.NaN, 1.5, Number.POSITIVE_INFINITY]) {
      expect(() => new SessionRepository({ store, snapshotEvery })).toThrow(
        expect.objectContaining({ name: 'ValidationError', message: `snapshotEvery must be a positive integer, got ${snapshotEvery}` }),
      );
    }
    for (const cacheSize of [0, -1, Number.NaN]) {
      expect(() => new SessionRepository({ store, cacheSize })).toThrow(expect.objectContaining({ name: 'ValidationError', message: expect.stringMatching(/^cacheSize must be a positive integer/) }));
    }
    expect(() => new SessionRepository({ store, snapshotEvery: 1, cacheSize: 1 })).not.toThrow();
  });

  it('keeps at most cacheSize sessions, evicting the least recently used', async () => {
    const { store, reads } = setup();
    const repository = new SessionRepository({ store, cacheSize: 2 });
    await repository.load('a');
    await repository.load('b');
    await repository.load('a'); // a is now the most recent
    await repository.load('c'); // evicts b
    reads.length = 0;
    await repository.load('a');
    await repository.load('c');
    expect(reads).toEqual([]);
    await repository.load('b');
    expect(reads.map((r) => r.id)).toEqual(['b']);
  });

  it('does not keep an ended session in memory: the next load reads its log', async () => {
    const { reads, repository, planner, write } = setup();
    await write('open', 1);
    await write('ended', 1);
    await planner.handle('ended', { type: 'CancelSession', reason: 'done with it' });
    reads.length = 0;
    expect(statusOf(await repository.load('open'))).toBe('active');
    expect(reads).toEqual([]); // open: served from memory
    const ended = await repository.load('ended');
    expect(statusOf(ended)).toBe('cancelled');
    expect(reads.map((r) => r.id)).toEqual(['ended']); // ended: not kept when it ended, nor when loaded
    await repository.load('ended');
    expect(reads.map((r) => r.id)).toEqual(['ended', 'ended']);
  });

  it('rebuild(until) folds the log up to a version and ignores the cache', async () => {
    const { write, repository } = setup();
    await write('s1', 3); // v5
    expect((await repository.rebuild('s1', 2)).state.version).toBe(2);
    expect((await repository.rebuild('s1', 4)).state.version).toBe(4);
    expect((await repository.rebuild('s1')).state.version).toBe(5);
    expect((await repository.rebuild('s1', 0)).state.version).toBe(0);
    const missing = await repository.rebuild('nope');
    expect(missing.exists).toBe(false);
    expect(missing.state.version).toBe(0);
  });

  it('rebuildAll folds every session in one pass over the log, equal to rebuilding each', async () => {
    const { write, repository, store, reads } = setup();
    await write('a', 2);
    await write('b', 4);
    await write('a', 1);
    reads.length = 0;
    const all = await repository.rebuildAll();
    expect(reads).toEqual([]); // no per-session reads
    expect([...all.keys()].sort()).toEqual(['a', 'b']);
    for (const id of ['a', 'b']) {
      expect(serializeState(all.get(id)!.state)).toEqual(serializeState((await repository.rebuild(id)).state));
      const { events } = await store.readStream(id);
      expect(all.get(id)!.lastTimestamp).toBe(events.at(-1)!.timestamp);
    }
  });
});
