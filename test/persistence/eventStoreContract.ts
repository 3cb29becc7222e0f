import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConcurrencyError, isConcurrencyError, isStoreUnavailableError, isValidationError } from '../../src/errors.js';
import type { NewEvent } from '../../src/protocol/events.js';
import { aggregateStream, hasLatestEvents, type EventStore, type LatestEvents, type OutboxStore } from '../../src/persistence/eventStore.js';
import { makeCommand, makeEvent, makeEvents, sequenced, uniqueStream } from './fixtures.js';

/** Creates a fresh store for one test and a cleanup that closes it (and removes its data). */
export type StoreFactory<S> = () => Promise<{ store: S; cleanup: () => Promise<void> }>;

/** Runs `fn` and returns the error it rejects with (failing the test if it resolves). */
async function rejection(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

/** Everything an async iterable gives, in order. */
async function collect<T>(events: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const e of events) all.push(e);
  return all;
}

function useStore<S>(factory: StoreFactory<S>): () => S {
  let current: { store: S; cleanup: () => Promise<void> } | undefined;
  beforeEach(async () => {
    current = await factory();
  });
  afterEach(async () => {
    await current?.cleanup();
    current = undefined;
  });
  return () => {
    if (!current) throw new Error('store not created');
    return current.store;
  };
}

/**
 * The EventStore contract every backend must pass. Tests use unique stream ids and only check that
 * listStreams includes theirs, so a backend may share state between tests (a JetStream server).
 */
export function runEventStoreContract(name: string, factory: StoreFactory<EventStore>): void {
  describe(`EventStore contract: ${name}`, () => {
    const store = useStore(factory);

    it('assigns sequences 1..n to a new stream and returns the new version', async () => {
      const id = uniqueStream();
      const events = makeEvents(id, 3);
      expect(await store().appendToStream(id, events, { expectedVersion: 0 })).toEqual({ nextExpectedVersion: 3 });
      const read = await store().readStream(id);
      expect(read.events.map((e) => e.sequence)).toEqual([1, 2, 3]);
      expect(read).toMatchObject({ currentVersion: 3, exists: true });
    });

    it('reads back exactly what was appended, envelope and data', async () => {
      const id = uniqueStream();
      const events = [
        makeEvent(id, { causationId: 'c-1', correlationId: 'k-1', timestamp: 1_700_000_000_000 }),
        makeEvent(id, { payload: { type: 'SessionCompleted', data: { tasks: 4 } } }),
        makeEvent(id, { payload: { type: 'SessionFailed', data: { reason: 'boom', taskId: 't9' } } }),
      ];
      await store().appendToStream(id, events, { expectedVersion: 0 });
      expect((await store().readStream(id)).events).toEqual(sequenced(events));
    });

    it('continues sequences across appends and reads inclusive from/to ranges', async () => {
      const id = uniqueStream();
      const first = makeEvents(id, 2);
      const second = makeEvents(id, 3);
      await store().appendToStream(id, first, { expectedVersion: 0 });
      expect(await store().appendToStream(id, second, { expectedVersion: 2 })).toEqual({ nextExpectedVersion: 5 });
      const all = sequenced([...first, ...second]);
      expect((await store().readStream(id, { from: 2, to: 4 })).events).toEqual(all.slice(1, 4));
      expect((await store().readStream(id, { from: 4 })).events).toEqual(all.slice(3));
      expect((await store().readStream(id, { to: 2 })).events).toEqual(all.slice(0, 2));
      expect((await store().readStream(id, { from: 3, to: 3 })).events).toEqual([all[2]]);
      const beyond = await store().readStream(id, { from: 6 });
      expect(beyond).toEqual({ events: [], currentVersion: 5, exists: true });
      // `last`: the last N of the range.
      expect(await store().readStream(id, { last: 1 })).toEqual({ events: [all[4]], currentVersion: 5, exists: true });
      expect((await store().readStream(id, { last: 2, to: 3 })).events).toEqual(all.slice(1, 3));
      expect((await store().readStream(id, { last: 9, from: 2 })).events).toEqual(all.slice(1));
      expect((await store().readStream(id, { last: 0 })).events).toEqual([]);
    });

    it('aggregateStream folds exactly the events readStream gives, for any range', async () => {
      const id = uniqueStream();
      const events = makeEvents(id, 7);
      await store().appendToStream(id, events, { expectedVersion: 0 });
      const fold = { initialState: (): number[] => [], evolve: (seen: number[], e: { sequence: number }) => [...seen, e.sequence] };
      for (const range of [{}, { from: 3 }, { to: 4 }, { from: 2, to: 6 }, { from: 7 }, { from: 8 }, { from: 5, to: 5 }]) {
        const read = await store().readStream(id, range);
        expect(await aggregateStream(store(), id, { ...fold, ...range })).toEqual({
          state: read.events.map((e) => e.sequence),
          currentVersion: 7,
          exists: true,
        });
      }
      expect(await aggregateStream(store(), uniqueStream('missing'), fold)).toEqual({ state: [], currentVersion: 0, exists: false });
      // What evolve throws reaches the caller as it is (not as a store failure), and the store goes on.
      class FoldBroke extends Error {}
      const broke = new FoldBroke('evolve refused event 4');
      const refuse = {
        initialState: () => 0,
        evolve: (n: number, e: { sequence: number }) => {
          if (e.sequence === 4) throw broke;
          return n + 1;
        },
      };
      await expect(aggregateStream(store(), id, refuse)).rejects.toBe(broke);
      await expect(aggregateStream(store(), id, { ...refuse, from: 4 })).rejects.toBe(broke);
      await expect(aggregateStream(store(), id, { ...refuse, from: 7 })).resolves.toMatchObject({ state: 1 });
    });

    it('reports a missing stream as not existing at version 0', async () => {
      expect(await store().readStream(uniqueStream('missing'))).toEqual({ events: [], currentVersion: 0, exists: false });
    });

    it('rejects a stale expected version with ConcurrencyError and leaves the stream unchanged', async () => {
      const id = uniqueStream();
      const events = makeEvents(id, 2);
      await store().appendToStream(id, events, { expectedVersion: 0 });
      const err = await rejection(() => store().appendToStream(id, makeEvents(id, 1), { expectedVersion: 1 }));
      expect(isConcurrencyError(err)).toBe(true);
      expect(err).toBeInstanceOf(ConcurrencyError);
      expect(err).toMatchObject({ streamId: id, expectedVersion: 1, actualVersion: 2 });
      const fresh = await rejection(() => store().appendToStream(id, makeEvents(id, 1), { expectedVersion: 0 }));
      expect(fresh).toMatchObject({ name: 'ConcurrencyError', expectedVersion: 0, actualVersion: 2 });
      expect((await store().readStream(id)).events).toEqual(sequenced(events));
    });

    it('rejects an expected version ahead of a missing stream', async () => {
      const id = uniqueStream();
      const err = await rejection(() => store().appendToStream(id, makeEvents(id, 1), { expectedVersion: 3 }));
      expect(err).toMatchObject({ name: 'ConcurrencyError', streamId: id, expectedVersion: 3, actualVersion: 0 });
      expect((await store().readStream(id)).exists).toBe(false);
    });

    it("appends at 'any' to new and existing streams", async () => {
      const id = uniqueStream();
      expect(await store().appendToStream(id, makeEvents(id, 2), { expectedVersion: 'any' })).toEqual({
        nextExpectedVersion: 2,
      });
      expect(await store().appendToStream(id, makeEvents(id, 1), { expectedVersion: 'any' })).toEqual({
        nextExpectedVersion: 3,
      });
      expect((await store().readStream(id)).events.map((e) => e.sequence)).toEqual([1, 2, 3]);
    });

    it('treats an empty append as a no-op returning the current version', async () => {
      const id = uniqueStream();
      expect(await store().appendToStream(id, [], { expectedVersion: 0 })).toEqual({ nextExpectedVersion: 0 });
      expect((await store().readStream(id)).exists).toBe(false);
      await store().appendToStream(id, makeEvents(id, 2), { expectedVersion: 0 });
      expect(await store().appendToStream(id, [], { expectedVersion: 'any' })).toEqual({ nextExpectedVersion: 2 });
    });

    it('lets exactly one of several concurrent appends at the same version win', async () => {
      const id = uniqueStream();
      await store().appendToStream(id, makeEvents(id, 1), { expectedVersion: 0 });
      const batches = Array.from({ length: 5 }, () => makeEvents(id, 2));
      const results = await Promise.allSettled(
        batches.map((events) => store().appendToStream(id, events, { expectedVersion: 1 })),
      );
      const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
      expect(won).toHaveLength(1);
      for (const r of results) {
        if (r.status === 'rejected') expect(isConcurrencyError(r.reason)).toBe(true);
      }
      const read = await store().readStream(id, { from: 2 });
      expect(read.events).toEqual(sequenced(batches[won[0] as number] ?? [], 1));
      expect(read.currentVersion).toBe(3);
    });

    it('keeps sequences gap-free and each append contiguous under concurrent appends at any', async () => {
      const id = uniqueStream();
      const batches = Array.from({ length: 20 }, () => makeEvents(id, 2));
      await Promise.all(batches.map((events) => store().appendToStream(id, events, { expectedVersion: 'any' })));
      const read = await store().readStream(id);
      expect(read.events.map((e) => e.sequence)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
      for (const events of batches) {
        const at = read.events.findIndex((e) => e.id === events[0]?.id);
        expect(read.events[at + 1]?.id).toBe(events[1]?.id);
      }
    });

    it('accepts many concurrent appends to different streams', async () => {
      const ids = Array.from({ length: 50 }, () => uniqueStream('many'));
      const events = ids.map((id) => makeEvent(id));
      const results = await Promise.all(ids.map((id, i) => store().appendToStream(id, [events[i]!], { expectedVersion: 0 })));
      expect(results.every((r) => r.nextExpectedVersion === 1)).toBe(true);
      for (const [i, id] of ids.entries()) expect((await store().readStream(id)).events).toEqual(sequenced([events[i]!]));
      const listed = await store().listStreams();
      expect(listed).toEqual(expect.arrayContaining(ids));
    });

    it('reads every stream in one pass, each in order', async () => {
      const a = uniqueStream('all');
      const b = uniqueStream('all');
      await store().appendToStream(a, makeEvents(a, 2), { expectedVersion: 0 });
      await store().appendToStream(b, makeEvents(b, 3), { expectedVersion: 0 });
      await store().appendToStream(a, makeEvents(a, 1), { expectedVersion: 2 });
      const seen = new Map<string, number[]>();
      for await (const e of store().readAll()) seen.set(e.sessionId, [...(seen.get(e.sessionId) ?? []), e.sequence]);
      expect(seen.get(a)).toEqual([1, 2, 3]);
      expect(seen.get(b)).toEqual([1, 2, 3]);
      const again = (await store().readStream(a)).events;
      const all: string[] = [];
      for await (const e of store().readAll()) if (e.sessionId === a) all.push(e.id);
      expect(all).toEqual(again.map((e) => e.id));
    });

    it('gives the latest event of every stream in one pass, each stream once, including one appended after another', async () => {
      const s = store();
      if (!hasLatestEvents(s)) throw new Error(`${name} does not implement LatestEvents`);
      const a = uniqueStream('latest');
      const b = uniqueStream('latest');
      const c = uniqueStream('latest');
      const aEvents = makeEvents(a, 2);
      const bEvents = [...makeEvents(b, 2), makeEvent(b, { payload: { type: 'SessionCompleted', data: { tasks: 1 } } })];
      const cEvents = makeEvents(c, 1);
      await s.appendToStream(a, aEvents, { expectedVersion: 0 });
      await s.appendToStream(b, bEvents, { expectedVersion: 0 });
      await s.appendToStream(c, cEvents, { expectedVersion: 0 });
      // `a` moves on after `b` and `c`: its latest is its new last event, not the one before.
      const aLater = makeEvents(a, 2);
      await s.appendToStream(a, aLater, { expectedVersion: 2 });
      await s.appendToStream(uniqueStream('empty'), [], { expectedVersion: 0 });

      const latest = await collect(s.latestEvents());
      const ours = latest.filter((e) => [a, b, c].includes(e.streamId));
      expect(ours.map((e) => e.streamId).sort()).toEqual([a, b, c].sort()); // each once
      const bySession = new Map(ours.map((e) => [e.streamId, e]));
      // Its type, and its time: the event's timestamp, or (JetStream) when the server stored it.
      const tip = (event: NewEvent) => ({ type: event.type, timestamp: expect.closeTo(event.timestamp, -4.5) as number });
      expect(bySession.get(a)).toEqual({ streamId: a, ...tip(aLater[1]!) });
      expect(bySession.get(b)).toEqual({ streamId: b, ...tip(bEvents[2]!) });
      expect(bySession.get(c)).toEqual({ streamId: c, ...tip(cEvents[0]!) });
      // Exactly one event per stream the store lists (a stream without events has none).
      expect(latest.map((e) => e.streamId).sort()).toEqual([...(await s.listStreams())].sort());
    });

    it('gives no latest event from an empty store', async () => {
      // Every factory gives each test a store of its own (JetStream: a stream of its own).
      const s = store();
      if (!hasLatestEvents(s)) throw new Error(`${name} does not implement LatestEvents`);
      expect(await collect(s.latestEvents())).toEqual([]);
      await s.appendToStream(uniqueStream('empty'), [], { expectedVersion: 0 });
      expect(await collect(s.latestEvents())).toEqual([]);
    });

    it('scans the latest events of many streams whole', async () => {
      // More streams than one pull of the JetStream read takes (1,024 messages).
      const s = store();
      if (!hasLatestEvents(s)) throw new Error(`${name} does not implement LatestEvents`);
      const ids = Array.from({ length: 1_100 }, () => uniqueStream('many'));
      const last = new Map<string, string>();
      for (let i = 0; i < ids.length; i += 100) {
        await Promise.all(ids.slice(i, i + 100).map(async (id, k) => {
          // Every third stream ends on another type: the scan gives each stream its own.
          const events = (i + k) % 3 === 0 ? [makeEvent(id), makeEvent(id, { payload: { type: 'SessionCompleted', data: { tasks: 1 } } })] : makeEvents(id, 2);
          await s.appendToStream(id, events, { expectedVersion: 0 });
          last.set(id, events[1]!.type);
        }));
      }
      const latest = await collect(s.latestEvents());
      expect(latest).toHaveLength(ids.length);
      expect(new Map(latest.map((e) => [e.streamId, e.type]))).toEqual(last);
    }, 60_000);

    it('refuses every operation once closed, with StoreUnavailableError; closing twice is fine', async () => {
      const id = uniqueStream('closed');
      await store().close();
      const calls: Array<() => Promise<unknown>> = [
        () => store().appendToStream(id, makeEvents(id, 1), { expectedVersion: 0 }),
        () => store().readStream(id),
        () => store().listStreams(),
        async () => {
          for await (const e of store().readAll()) void e;
        },
        () => collect((store() as EventStore & LatestEvents).latestEvents()),
      ];
      for (const call of calls) expect(isStoreUnavailableError(await rejection(call))).toBe(true);
      await store().close();
    });

    it('lists appended streams and not missing ones', async () => {
      const a = uniqueStream('list');
      const b = uniqueStream('list');
      await store().appendToStream(a, makeEvents(a, 1), { expectedVersion: 0 });
      await store().appendToStream(b, makeEvents(b, 1), { expectedVersion: 0 });
      await store().appendToStream(uniqueStream('empty'), [], { expectedVersion: 0 });
      const listed = await store().listStreams();
      expect(listed).toEqual(expect.arrayContaining([a, b]));
      expect(listed.filter((s) => s.startsWith('empty-'))).toEqual([]);
    });

    it('preserves order across many sequential appends', async () => {
      const id = uniqueStream();
      const all = [];
      for (let i = 0; i < 60; i++) {
        const events = makeEvents(id, (i % 3) + 1);
        await store().appendToStream(id, events, { expectedVersion: all.length });
        all.push(...events);
      }
      const read = await store().readStream(id);
      expect(read.currentVersion).toBe(all.length);
      expect(read.events).toEqual(sequenced(all));
    });

    it('round-trips large event data', async () => {
      const id = uniqueStream();
      const reason = 'x'.repeat(100 * 1024) + 'end';
      const events = [makeEvent(id, { payload: { type: 'InputRejected', data: { reason } } })];
      await store().appendToStream(id, events, { expectedVersion: 0 });
      expect((await store().readStream(id)).events).toEqual(sequenced(events));
    });

    it('round-trips unicode', async () => {
      const id = uniqueStream();
      const reason = 'héllo — 日本語 — 🚀👩‍👩‍👧 — עברית — e\u0301 — \u2028\u2029 — nul\u0000 — "quoted" \\ ';
      const events = [makeEvent(id, { payload: { type: 'InputRejected', data: { reason, inputType: 'ü' } } })];
      await store().appendToStream(id, events, { expectedVersion: 0 });
      expect((await store().readStream(id)).events[0]?.data).toEqual({ reason, inputType: 'ü' });
    });

    it('refuses events the read path could not give back, with ValidationError, storing nothing', async () => {
      const id = uniqueStream();
      const { data: _data, ...noData } = makeEvent(id) as NewEvent & { data?: unknown };
      const twice = makeEvent(id);
      const bad: Array<[string, unknown[]]> = [
        ['no data', [noData]],
        ['unknown type', [{ ...makeEvent(id), type: 'Nope' }]],
        ['data of the wrong shape', [{ ...makeEvent(id), type: 'SessionStarted', data: {} }]],
        ['a numeric id', [{ ...makeEvent(id), id: 7 }]],
        ['a version this one does not write', [{ ...makeEvent(id), version: 2 }]],
        ['another session', [makeEvent(uniqueStream())]],
        // Stores differ on what they give back of it (JetStream's read drops it): no store takes it.
        ['an unknown top-level field', [{ ...makeEvent(id), tenant: 'acme' }]],
        ['one id twice', [twice, { ...twice }]],
        ['a valid event before a bad one', [makeEvent(id), noData]],
      ];
      for (const [what, events] of bad) {
        const err = await rejection(() => store().appendToStream(id, events as NewEvent[], { expectedVersion: 0 }));
        expect(isValidationError(err), what).toBe(true);
      }
      expect(await store().readStream(id)).toEqual({ events: [], currentVersion: 0, exists: false });
      expect(await store().listStreams()).not.toContain(id);
    });

    it('refuses append options without a valid expectedVersion, with ValidationError, storing nothing', async () => {
      const id = uniqueStream();
      for (const options of [undefined, null, {}, { expectedVersion: -1 }, { expectedVersion: 1.5 }, { expectedVersion: '0' }, { expectedVersion: Number.NaN }]) {
        const err = await rejection(() => store().appendToStream(id, makeEvents(id, 1), options as never));
        expect(isValidationError(err), JSON.stringify(options)).toBe(true);
      }
      expect((await store().readStream(id)).exists).toBe(false);
    });

    it('refuses read bounds that are not whole numbers of at least 0, with ValidationError', async () => {
      const id = uniqueStream();
      await store().appendToStream(id, makeEvents(id, 2), { expectedVersion: 0 });
      for (const options of [{ from: Number.NaN }, { from: 1.5 }, { to: -1 }, { last: 1.5 }, { last: -1 }, { from: '2' }, { to: Infinity }]) {
        const err = await rejection(() => store().readStream(id, options as never));
        expect(isValidationError(err), JSON.stringify(options)).toBe(true);
      }
      expect((await store().readStream(id, { from: 0, to: 1 })).events.map((e) => e.sequence)).toEqual([1]);
      await expect(store().readStream(id, { from: Number.NaN })).rejects.toThrow(/read option from must be a whole number of at least 0, not NaN$/);
    });

    it('takes the same stream ids everywhere: session ids, 1-64 characters of [A-Za-z0-9_-]', async () => {
      for (const id of ['', 'a.b', 'a b', '../x', 'a\nb', 'x'.repeat(65), 'é']) {
        expect(isValidationError(await rejection(() => store().appendToStream(id, [], { expectedVersion: 0 }))), JSON.stringify(id)).toBe(true);
        expect(isValidationError(await rejection(() => store().readStream(id))), JSON.stringify(id)).toBe(true);
      }
      const longest = 'x'.repeat(64);
      await store().appendToStream(longest, makeEvents(longest, 1), { expectedVersion: 'any' });
      expect((await store().readStream(longest)).exists).toBe(true);
    });

    it('succeeds on a retry of an append that landed (same events, same expected version), appending nothing again', async () => {
      const id = uniqueStream();
      const events = makeEvents(id, 2);
      await store().appendToStream(id, events, { expectedVersion: 0 });
      expect(await store().appendToStream(id, structuredClone(events), { expectedVersion: 0 })).toEqual({ nextExpectedVersion: 2 });
      expect((await store().readStream(id)).events).toEqual(sequenced(events));
      // Not once the stream has moved on past it: that is a conflict.
      await store().appendToStream(id, makeEvents(id, 1), { expectedVersion: 2 });
      expect(isConcurrencyError(await rejection(() => store().appendToStream(id, events, { expectedVersion: 0 })))).toBe(true);
    });

    it("takes a retry at 'any' of the stream's last append as done, appending nothing again", async () => {
      const id = uniqueStream();
      const events = makeEvents(id, 2);
      await store().appendToStream(id, events, { expectedVersion: 'any' });
      expect(await store().appendToStream(id, structuredClone(events), { expectedVersion: 'any' })).toEqual({ nextExpectedVersion: 2 });
      expect((await store().readStream(id)).events).toEqual(sequenced(events));
    });

    it('a retry sent while the append it repeats is still under way gets its outcome, not a conflict', async () => {
      const id = uniqueStream();
      const events = makeEvents(id, 2);
      const results = await Promise.all([
        store().appendToStream(id, events, { expectedVersion: 0 }),
        store().appendToStream(id, structuredClone(events), { expectedVersion: 0 }),
        store().appendToStream(id, structuredClone(events), { expectedVersion: 'any' }),
      ]);
      expect(results).toEqual([{ nextExpectedVersion: 2 }, { nextExpectedVersion: 2 }, { nextExpectedVersion: 2 }]);
      expect((await store().readStream(id)).events).toEqual(sequenced(events));
    });

    it('continues a retry whose first events are stored right after its expected version (an append that landed in part)', async () => {
      const id = uniqueStream();
      const [a, b, c, d] = makeEvents(id, 4);
      await store().appendToStream(id, [a!, b!], { expectedVersion: 0 });
      // JetStream's appends can land in part (one message per event): the retry carries on after
      // them, as it would there. So it does on every store, at a version and at 'any'.
      expect(await store().appendToStream(id, structuredClone([a!, b!, c!]), { expectedVersion: 0 })).toEqual({ nextExpectedVersion: 3 });
      expect(await store().appendToStream(id, structuredClone([c!, d!]), { expectedVersion: 'any' })).toEqual({ nextExpectedVersion: 4 });
      expect((await store().readStream(id)).events.map((e) => e.id)).toEqual([a!.id, b!.id, c!.id, d!.id]);
      // Events that are not the stream's last: a conflict, as ever.
      expect(isConcurrencyError(await rejection(() => store().appendToStream(id, [structuredClone(a!), ...makeEvents(id, 1)], { expectedVersion: 0 })))).toBe(true);
    });

    it('agrees on retries and reused ids while an earlier append is still being written', async () => {
      const id = uniqueStream();
      const [a, b, c] = makeEvents(id, 3);
      await store().appendToStream(id, [a!], { expectedVersion: 0 });
      // The same retry twice at once, of an append that landed in part: both get its outcome.
      const twice = await Promise.all([
        store().appendToStream(id, structuredClone([a!, b!]), { expectedVersion: 0 }),
        store().appendToStream(id, structuredClone([a!, b!]), { expectedVersion: 0 }),
      ]);
      expect(twice).toEqual([{ nextExpectedVersion: 2 }, { nextExpectedVersion: 2 }]);
      // An id of the append under way, reused by the next one: refused, not stored twice.
      const [, reused] = await Promise.allSettled([
        store().appendToStream(id, [c!], { expectedVersion: 2 }),
        store().appendToStream(id, [...makeEvents(id, 1), structuredClone(c!)], { expectedVersion: 3 }),
      ]);
      expect(reused.status === 'rejected' && isValidationError(reused.reason)).toBe(true);
      const ids = (await store().readStream(id)).events.map((e) => e.id);
      expect(ids.filter((x) => x === c!.id)).toHaveLength(1);
    });

    it("refuses a retry whose last landed event is the stream's tip but whose earlier ones differ: ConcurrencyError at a version, ValidationError at 'any'", async () => {
      const id = uniqueStream();
      const [a, b, x, c] = makeEvents(id, 4);
      await store().appendToStream(id, [a!, b!], { expectedVersion: 0 });
      // b is the stream's tip at the position the retry gives it, but a is not x: every landed id
      // counts, not only the tip's. At a version that is a conflict (the stream is not where the
      // caller thinks); at 'any' b is an id the stream holds and no repeat: a ValidationError.
      const retry = () => structuredClone([x!, b!, c!]);
      const conflict = await rejection(() => store().appendToStream(id, retry(), { expectedVersion: 0 }));
      expect(conflict).toMatchObject({ name: 'ConcurrencyError', streamId: id, expectedVersion: 0, actualVersion: 2 });
      const reused = await rejection(() => store().appendToStream(id, retry(), { expectedVersion: 'any' }));
      expect(isValidationError(reused)).toBe(true);
      expect((reused as Error).message).toBe(`stream ${id}: event id ${JSON.stringify(b!.id)} is already event 2 of this stream; event ids must be unique; nothing was appended`);
      // The tip's place in the retry is past the stream's start: more events before it than stored.
      const short = uniqueStream();
      const [p, y, z] = makeEvents(short, 3);
      await store().appendToStream(short, [p!], { expectedVersion: 0 });
      const before = await rejection(() => store().appendToStream(short, structuredClone([y!, p!, z!]), { expectedVersion: 'any' }));
      expect((before as Error).message).toMatch(/is already event 1 of this stream; event ids must be unique; nothing was appended$/);
      expect((await store().readStream(id)).events.map((e) => e.id)).toEqual([a!.id, b!.id]);
      expect((await store().readStream(short)).events.map((e) => e.id)).toEqual([p!.id]);
    });

    it('continues a retry whose first events are appends still being written, as if those had landed', async () => {
      // Sent in one tick, before the first is durable: the memory store has applied it, JetStream
      // queues the retry behind it, the file store's group commit is still writing it.
      const id = uniqueStream();
      const [a, b, c] = makeEvents(id, 3);
      const atAny = await Promise.all([
        store().appendToStream(id, [a!], { expectedVersion: 'any' }),
        store().appendToStream(id, structuredClone([a!, b!]), { expectedVersion: 'any' }),
        store().appendToStream(id, structuredClone([a!, b!]), { expectedVersion: 'any' }),
      ]);
      expect(atAny).toEqual([{ nextExpectedVersion: 1 }, { nextExpectedVersion: 2 }, { nextExpectedVersion: 2 }]);
      expect((await store().readStream(id)).events).toEqual(sequenced([a!, b!]));
      // At a version, across two appends under way.
      const other = uniqueStream();
      const [d, e, f] = makeEvents(other, 3);
      const atVersion = await Promise.all([
        store().appendToStream(other, [d!], { expectedVersion: 0 }),
        store().appendToStream(other, [e!], { expectedVersion: 1 }),
        store().appendToStream(other, structuredClone([d!, e!, f!]), { expectedVersion: 0 }),
        store().appendToStream(id, structuredClone([b!, c!]), { expectedVersion: 1 }),
      ]);
      expect(atVersion).toEqual([{ nextExpectedVersion: 1 }, { nextExpectedVersion: 2 }, { nextExpectedVersion: 3 }, { nextExpectedVersion: 3 }]);
      expect((await store().readStream(other)).events).toEqual(sequenced([d!, e!, f!]));
      expect((await store().readStream(id)).events).toEqual(sequenced([a!, b!, c!]));
    });

    it('refuses the same events at another expected version while the first append is still being written: their ids are taken', async () => {
      const id = uniqueStream();
      const [a] = makeEvents(id, 1);
      const first = store().appendToStream(id, [a!], { expectedVersion: 0 });
      // Not a retry (that would name version 0 or 'any'): a new append reusing an id of the stream.
      const again = store().appendToStream(id, [structuredClone(a!)], { expectedVersion: 1 }).catch((e: unknown) => e);
      expect(await first).toEqual({ nextExpectedVersion: 1 });
      const err = await again;
      expect(isValidationError(err)).toBe(true);
      expect((err as Error).message).toMatch(/is already event 1 of this stream; event ids must be unique; nothing was appended$/);
      expect((await store().readStream(id)).events).toEqual(sequenced([a!]));
    });

    it("refuses an id an earlier event of the stream has (no repeat of its last append), at a version or at 'any'", async () => {
      const id = uniqueStream();
      const [a] = makeEvents(id, 1);
      const [b] = makeEvents(id, 1);
      await store().appendToStream(id, [a!], { expectedVersion: 0 });
      await store().appendToStream(id, [b!], { expectedVersion: 1 });
      for (const expectedVersion of [2, 'any'] as const) {
        const err = await rejection(() => store().appendToStream(id, [structuredClone(a!)], { expectedVersion }));
        expect(isValidationError(err), String(expectedVersion)).toBe(true);
        expect((err as Error).message).toMatch(/is already event 1 of this stream; event ids must be unique; nothing was appended$/);
      }
      expect((await store().readStream(id)).events.map((e) => e.id)).toEqual([a!.id, b!.id]);
    });

    it('isolates stored history from callers mutating inputs and results', async () => {
      const id = uniqueStream();
      const events = makeEvents(id, 1);
      const expected = sequenced(structuredClone(events));
      await store().appendToStream(id, events, { expectedVersion: 0 });
      (events[0] as { id: string }).id = 'mutated';
      const first = await store().readStream(id);
      (first.events[0] as { id: string }).id = 'mutated too';
      expect((await store().readStream(id)).events).toEqual(expected);
    });
  });
}

/** The OutboxStore contract: commands travel atomically with their append until delivered. */
export function runOutboxContract(name: string, factory: StoreFactory<EventStore & OutboxStore>): void {
  describe(`OutboxStore contract: ${name}`, () => {
    const store = useStore(factory);
    const pendingOf = async (ids: string[]) =>
      (await store().pendingCommands()).filter((c) => ids.includes(c.id));

    it('refuses outbox operations once closed, with StoreUnavailableError', async () => {
      await store().close();
      expect(isStoreUnavailableError(await rejection(() => store().pendingCommands()))).toBe(true);
      expect(isStoreUnavailableError(await rejection(() => store().markDelivered(['x'])))).toBe(true);
    });

    it('stores the commands of an append with its version', async () => {
      const id = uniqueStream();
      const commands = [makeCommand(id), makeCommand(id)];
      await store().appendToStream(id, makeEvents(id, 1), { expectedVersion: 0 });
      await store().appendToStream(id, makeEvents(id, 2), { expectedVersion: 1, commands });
      expect(await pendingOf(commands.map((c) => c.id))).toEqual(
        commands.map((c) => ({ ...c, storedAtVersion: 3 })),
      );
    });

    it('lists pending commands oldest first across streams', async () => {
      const streams = [uniqueStream(), uniqueStream(), uniqueStream()];
      const ids: string[] = [];
      for (const round of [0, 1]) {
        for (const id of streams) {
          const command = makeCommand(id);
          ids.push(command.id);
          await store().appendToStream(id, makeEvents(id, 1), { expectedVersion: round, commands: [command] });
        }
      }
      expect((await pendingOf(ids)).map((c) => c.id)).toEqual(ids);
    });

    it('removes delivered commands, idempotently', async () => {
      const id = uniqueStream();
      const [a, b] = [makeCommand(id), makeCommand(id)];
      await store().appendToStream(id, makeEvents(id, 1), { expectedVersion: 0, commands: [a, b] });
      await store().markDelivered([a.id]);
      expect((await pendingOf([a.id, b.id])).map((c) => c.id)).toEqual([b.id]);
      await store().markDelivered([a.id, 'no-such-command']);
      await store().markDelivered([]);
      expect((await pendingOf([a.id, b.id])).map((c) => c.id)).toEqual([b.id]);
      await store().markDelivered([b.id, b.id]);
      expect(await pendingOf([a.id, b.id])).toEqual([]);
    });

    it('refuses a command the log could not give back, storing nothing of the append', async () => {
      const id = uniqueStream();
      for (const bad of [{ id: '' }, { ...makeCommand(id), command: 'x' }]) {
        const err = await rejection(() => store().appendToStream(id, makeEvents(id, 1), { expectedVersion: 0, commands: [bad as never] }));
        expect(err).toMatchObject({ name: 'ValidationError' });
      }
      expect((await store().readStream(id)).exists).toBe(false);
      expect(await store().pendingCommands()).toEqual([]);
    });

    it('stores no commands for a conflicting append', async () => {
      const id = uniqueStream();
      await store().appendToStream(id, makeEvents(id, 1), { expectedVersion: 0 });
      const command = makeCommand(id);
      const err = await rejection(() =>
        store().appendToStream(id, makeEvents(id, 1), { expectedVersion: 0, commands: [command] }),
      );
      expect(isConcurrencyError(err)).toBe(true);
      expect(await pendingOf([command.id])).toEqual([]);
    });

    it('keeps only the winner’s commands when concurrent appends conflict', async () => {
      const id = uniqueStream();
      const commands = [makeCommand(id), makeCommand(id), makeCommand(id)];
      const results = await Promise.allSettled(
        commands.map((command) => store().appendToStream(id, makeEvents(id, 1), { expectedVersion: 0, commands: [command] })),
      );
      const winner = results.findIndex((r) => r.status === 'fulfilled');
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      expect((await pendingOf(commands.map((c) => c.id))).map((c) => c.id)).toEqual([commands[winner]?.id]);
    });

    it('stores commands of an append without events at the current version', async () => {
      const id = uniqueStream();
      await store().appendToStream(id, makeEvents(id, 2), { expectedVersion: 0 });
      const command = makeCommand(id);
      expect(await store().appendToStream(id, [], { expectedVersion: 2, commands: [command] })).toEqual({
        nextExpectedVersion: 2,
      });
      expect(await pendingOf([command.id])).toEqual([{ ...command, storedAtVersion: 2 }]);
    });

    it('keeps the version of the first append that stored a command appended again while it is pending', async () => {
      const id = uniqueStream();
      const command = makeCommand(id);
      await store().appendToStream(id, makeEvents(id, 1), { expectedVersion: 0, commands: [command] });
      await store().appendToStream(id, makeEvents(id, 2), { expectedVersion: 1, commands: [structuredClone(command)] });
      expect(await pendingOf([command.id])).toEqual([{ ...command, storedAtVersion: 1 }]);
    });
  });
}
