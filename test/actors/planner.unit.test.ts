import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import type { PlannerInput } from '../../src/machines/decide.js';
import { Planner, toOutbox, type Commit, type Effects } from '../../src/actors/planner.js';
import { SessionRepository } from '../../src/actors/sessionRepository.js';
import { ConcurrencyError, isConcurrencyError, isStoreUnavailableError, isValidationError, StoreUnavailableError } from '../../src/errors.js';
import { decide } from '../../src/machines/decide.js';
import { silentLogger } from '../../src/observability/logger.js';
import type { DomainEvent } from '../../src/protocol/events.js';
import type { AppendOptions, AppendResult, EventStore, ReadOptions, ReadResult } from '../../src/persistence/eventStore.js';
import { MemoryEventStore } from '../../src/persistence/memoryEventStore.js';
import { MemorySnapshotStore } from '../../src/persistence/memorySnapshotStore.js';
import type { OutboxCommand } from '../../src/protocol/commands.js';
import type { NewEvent } from '../../src/protocol/events.js';
import type { InputMeta } from '../../src/protocol/inputs.js';
import { defaultDecideDeps } from '../../src/runtime/embeddedRuntime.js';

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((res) => (resolve = res));
  return { promise, resolve };
}

type AppendHook = (streamId: string, events: NewEvent[], options: AppendOptions) => Promise<void> | void;

/** Delegates to a MemoryEventStore; `beforeAppend` can hold an append open or make it fail. */
class WrappedStore implements EventStore {
  beforeAppend: AppendHook | undefined;
  appends: Array<{ streamId: string; events: NewEvent[]; options: AppendOptions }> = [];
  reads = 0;
  constructor(readonly inner = new MemoryEventStore()) {}
  async appendToStream(streamId: string, events: NewEvent[], options: AppendOptions): Promise<AppendResult> {
    this.appends.push({ streamId, events, options });
    await this.beforeAppend?.(streamId, events, options);
    return this.inner.appendToStream(streamId, events, options);
  }
  readStream(streamId: string, options?: ReadOptions): Promise<ReadResult> {
    this.reads++;
    return this.inner.readStream(streamId, options);
  }
  listStreams(): Promise<string[]> {
    return this.inner.listStreams();
  }
  readAll(): AsyncIterable<DomainEvent> {
    return this.inner.readAll();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Records every perform call, with the store's version of the session at that moment. */
class RecordingEffects implements Effects {
  calls: OutboxCommand[][] = [];
  perform = vi.fn((commands: OutboxCommand[]) => {
    this.calls.push(commands);
  });
}

function setup(options: { maxConflictRetries?: number } = {}) {
  const store = new WrappedStore();
  const repository = new SessionRepository({ store });
  const effects = new RecordingEffects();
  let ids = 0;
  const planner = new Planner({
    store,
    repository,
    decideDeps: defaultDecideDeps(),
    effects,
    clock: () => 1_000,
    newId: () => `id-${++ids}`,
    logger: silentLogger,
    ...(options.maxConflictRetries === undefined ? {} : { maxConflictRetries: options.maxConflictRetries }),
  });
  return { store, repository, effects, planner };
}

const submit = { type: 'SubmitInput' as const, text: '- Fetch the data\n- Summarise the results' };

describe('Planner', () => {
  it('appends the events of each input at the expected version', async () => {
    const { store, planner, effects } = setup();
    const first = await planner.handle('s1', submit, { messageId: 'm1' });
    expect(first.events.map((e) => e.type)).toEqual(['SessionStarted', 'TasksPlanned', 'TaskDispatched']);
    expect(first.events.map((e) => e.sequence)).toEqual([1, 2, 3]);
    expect(first.state.version).toBe(3);
    expect(store.appends[0]!.options.expectedVersion).toBe(0);

    const dispatched = first.events[2]!;
    if (dispatched.type !== 'TaskDispatched') throw new Error('expected a dispatch');
    const { taskId, dispatchId } = dispatched.data;
    const second = await planner.handle('s1', { type: 'TaskCompleted', taskId, dispatchId, output: 'ok' }, { messageId: 'm2' });
    expect(store.appends[1]!.options.expectedVersion).toBe(3);
    expect(second.events[0]).toMatchObject({ type: 'TaskCompleted', sequence: 4, causationId: 'm2' });

    const { events } = await store.inner.readStream('s1');
    expect(events).toEqual([...first.events, ...second.events]);
    // The commands are stored with the events (the outbox) and handed to the effects.
    expect(store.appends[0]!.options.commands).toEqual(first.commands);
    expect(effects.calls[0]).toEqual(first.commands);
    expect(first.commands[0]).toMatchObject({ id: dispatchId, sessionId: 's1', causationId: 'm1', correlationId: 's1' });
    expect(first.commands[0]!.command).toMatchObject({ type: 'ExecuteTask', dispatchId, attempt: 1 });
  });

  it('acts only after the append is acknowledged (persist, then act)', async () => {
    const { store, planner, effects } = setup();
    const entered = deferred();
    const release = deferred();
    store.beforeAppend = async () => {
      entered.resolve();
      await release.promise;
    };
    const listener = vi.fn();
    planner.onCommit(listener);
    const handled = planner.handle('s1', submit);
    await entered.promise;
    // The append is under way but not acknowledged: nothing may have been acted on.
    await new Promise<void>((r) => setImmediate(r));
    expect(effects.perform).not.toHaveBeenCalled();
    expect(listener).not.toHaveBeenCalled();
    expect((await store.inner.readStream('s1')).events).toHaveLength(0);
    release.resolve();
    const commit = await handled;
    expect(effects.perform).toHaveBeenCalledTimes(1);
    expect(effects.perform).toHaveBeenCalledWith(commit.commands);
    expect(listener).toHaveBeenCalledWith(commit);
  });

  it('a failed append: no effects, the error propagates and the state is not cached', async () => {
    const { store, planner, effects, repository } = setup();
    await planner.handle('s1', submit, { messageId: 'm1' });
    const before = await repository.load('s1');
    store.beforeAppend = () => {
      throw new Error('disk full');
    };
    const commit = vi.fn();
    planner.onCommit(commit);
    const invalid = { type: 'InvalidInput' as const, reason: 'bad' };
    await expect(planner.handle('s1', invalid, { messageId: 'm2' })).rejects.toThrow('disk full');
    expect(effects.perform).toHaveBeenCalledTimes(1); // only the first, successful input
    expect(commit).not.toHaveBeenCalled();
    expect(store.appends).toHaveLength(2); // not retried: not a conflict

    // The next load rereads the log instead of trusting memory.
    const reads = store.reads;
    const reloaded = await repository.load('s1');
    expect(store.reads).toBe(reads + 1);
    expect(reloaded.version).toBe(before.version);

    store.beforeAppend = undefined;
    const retried = await planner.handle('s1', invalid, { messageId: 'm2' });
    expect(retried.events).toHaveLength(1);
    expect(retried.events[0]).toMatchObject({ type: 'InputRejected', sequence: 4 });
  });

  it('a concurrency conflict reloads the session and retries; nothing is lost', async () => {
    const { store, planner, effects, repository } = setup();
    const first = await planner.handle('s1', submit, { messageId: 'm1' });
    expect((await repository.load('s1')).version).toBe(3); // cached at 3

    // Another writer appends behind the planner's back.
    const other = new SessionRepository({ store: store.inner });
    const theirs = decide(await other.load('s1'), { type: 'InvalidInput', reason: 'from elsewhere' }, { messageId: 'x1', now: 5 }, defaultDecideDeps());
    await store.inner.appendToStream('s1', theirs.events, { expectedVersion: 3 });

    const dispatched = first.events[2]!;
    if (dispatched.type !== 'TaskDispatched') throw new Error('expected a dispatch');
    const report = { type: 'TaskCompleted' as const, taskId: dispatched.data.taskId, dispatchId: dispatched.data.dispatchId, output: 'done' };
    const commit = await planner.handle('s1', report, { messageId: 'm2' });

    expect(store.appends.slice(1).map((a) => a.options.expectedVersion)).toEqual([3, 4]);
    expect(commit.events[0]).toMatchObject({ type: 'TaskCompleted', sequence: 5 });
    const { events } = await store.inner.readStream('s1');
    expect(events.map((e) => e.sequence)).toEqual(events.map((_, i) => i + 1));
    expect(events.map((e) => e.causationId)).toEqual(['m1', 'm1', 'm1', 'x1', ...commit.events.map(() => 'm2')]);
    expect(commit.state.version).toBe(events.length);
    // The acted-on commands are those of the successful attempt only.
    expect(effects.calls).toHaveLength(2);
    expect(effects.calls[1]).toEqual(commit.commands);
    expect(commit.commands[0]?.command).toMatchObject({ type: 'ExecuteTask', attempt: 1 });
    const rebuilt = await repository.rebuild('s1');
    expect(rebuilt.state.version).toBe(commit.state.version);
  });

  it('a snapshot that cannot be saved does not stop the acknowledged append from being acted on', async () => {
    const store = new MemoryEventStore();
    const snapshots = new MemorySnapshotStore();
    vi.spyOn(snapshots, 'save').mockRejectedValue(new Error('snapshot disk full'));
    const effects = new RecordingEffects();
    const listener = vi.fn();
    const planner = new Planner({
      store,
      repository: new SessionRepository({ store, snapshots, snapshotEvery: 1 }),
      decideDeps: defaultDecideDeps(),
      effects,
      clock: () => 1,
      newId: () => 'n',
      logger: silentLogger,
    });
    planner.onCommit(listener);
    const commit = await planner.handle('s1', submit, { messageId: 'm1' });
    expect(effects.calls).toEqual([commit.commands]);
    expect(listener).toHaveBeenCalledTimes(1);
    expect((await store.readStream('s1')).currentVersion).toBe(3);
  });

  it('gives up after maxConflictRetries', async () => {
    const { store, planner, effects } = setup({ maxConflictRetries: 3 });
    store.beforeAppend = (streamId, _events, options) => {
      throw new ConcurrencyError(streamId, options.expectedVersion as number, 99);
    };
    const err = await planner.handle('s1', submit).catch((e: unknown) => e);
    expect(isConcurrencyError(err)).toBe(true);
    expect(store.appends).toHaveLength(3);
    expect(effects.perform).not.toHaveBeenCalled();
  });

  it('defaults to 5 conflict attempts', async () => {
    const { store, planner } = setup();
    store.beforeAppend = (streamId) => {
      throw new ConcurrencyError(streamId, 0, 1);
    };
    await expect(planner.handle('s1', submit)).rejects.toMatchObject({ name: 'ConcurrencyError' });
    expect(store.appends).toHaveLength(5);
  });

  it('applies the inputs of one session in order even when handed concurrently', async () => {
    const { store, planner } = setup();
    const release = deferred();
    let held = false;
    store.beforeAppend = async () => {
      if (!held) {
        held = true;
        await release.promise;
      }
    };
    const handled = [planner.handle('s1', submit, { messageId: 'm0' })];
    for (let i = 1; i <= 5; i++) handled.push(planner.handle('s1', { type: 'InvalidInput', reason: `r${i}` }, { messageId: `m${i}` }));
    // Another session is not held up by s1.
    const otherSession = await planner.handle('s2', submit, { messageId: 'o1' });
    expect(otherSession.events).toHaveLength(3);
    await new Promise<void>((r) => setImmediate(r));
    expect(store.appends.filter((a) => a.streamId === 's1')).toHaveLength(1); // the rest wait their turn
    release.resolve();
    await Promise.all(handled);
    const { events } = await store.inner.readStream('s1');
    const rejected = events.filter((e) => e.type === 'InputRejected');
    expect(rejected.map((e) => e.causationId)).toEqual(['m1', 'm2', 'm3', 'm4', 'm5']);
    expect(rejected.map((e) => (e.data as { reason: string }).reason)).toEqual(['r1', 'r2', 'r3', 'r4', 'r5']);
    await planner.drain();
  });

  it('calls commit listeners for each append until unsubscribed', async () => {
    const { planner } = setup();
    const seen: Commit[] = [];
    const off = planner.onCommit((c) => seen.push(c));
    const other = vi.fn();
    planner.onCommit(other);
    const c1 = await planner.handle('s1', submit);
    expect(seen).toEqual([c1]);
    off();
    await planner.handle('s1', { type: 'InvalidInput', reason: 'x' });
    expect(seen).toHaveLength(1);
    expect(other).toHaveBeenCalledTimes(2);
  });

  it('gives listeners a frozen commit, and a listener that throws neither fails the input nor starves the others', async () => {
    const { planner, store } = setup();
    const seen: string[][] = [];
    planner.onCommit((c) => {
      (c.events as DomainEvent[]).sort((a, b) => b.sequence - a.sequence); // a slip: TypeError, frozen
    });
    planner.onCommit((c) => {
      (c.state as { version: number }).version = -1;
    });
    planner.onCommit((c) => seen.push(c.events.map((e) => e.type)));
    planner.onCommit(async () => {
      throw new Error('async listener failed'); // a rejection: logged, not an unhandled one
    });
    const first = await planner.handle('s1', submit);
    expect(Object.isFrozen(first) && Object.isFrozen(first.events) && Object.isFrozen(first.events[0]) && Object.isFrozen(first.state)).toBe(true);
    // Through: the data of events and what executors will run.
    expect(Object.isFrozen(first.events[1]!.data)).toBe(true);
    expect(first.commands.every((c) => Object.isFrozen(c.command))).toBe(true);
    expect(first.state.version).toBe(3);
    expect(seen).toEqual([['SessionStarted', 'TasksPlanned', 'TaskDispatched']]);
    // The session goes on from the state the listeners could not change.
    const next = await planner.handle('s1', { type: 'CancelSession' });
    expect(next.events.map((e) => e.sequence)).toEqual([4]);
    expect((await store.inner.readStream('s1')).currentVersion).toBe(4);
  });

  it('a duplicate message id appends nothing, and performs again only the work the session waits on', async () => {
    const { store, planner, effects } = setup();
    const listener = vi.fn();
    planner.onCommit(listener);
    const first = await planner.handle('s1', submit, { messageId: 'm1' });
    const again = await planner.handle('s1', submit, { messageId: 'm1' });
    expect(again.events).toEqual([]);
    expect(again.commands).toEqual([]);
    expect(again.state.version).toBe(3);
    expect(store.appends).toHaveLength(1);
    expect(listener).toHaveBeenCalledTimes(1);
    // The redelivery may be the retry of an append that landed but reported an error, whose
    // ExecuteTask was then never sent: it is sent again, with the same dispatch id.
    expect(effects.perform).toHaveBeenCalledTimes(2);
    const [resent] = effects.perform.mock.calls[1]![0] as Array<{ id: string; command: { type: string } }>;
    expect(resent!.id).toBe(first.commands[0]!.id);
    expect(resent!.command.type).toBe('ExecuteTask');
  });

  it('an append cut short after its first event is finished when the input comes back', async () => {
    const { store, planner, effects } = setup();
    // As JetStream can: the first event lands, then the connection fails before the others.
    store.beforeAppend = async (streamId, events, options) => {
      store.beforeAppend = undefined;
      await store.inner.appendToStream(streamId, events.slice(0, 1), options);
      throw new StoreUnavailableError('connection lost after the first event');
    };
    await expect(planner.handle('s1', submit, { messageId: 'm1' })).rejects.toSatisfy(isStoreUnavailableError);
    expect((await store.inner.readStream('s1')).events.map((e) => e.type)).toEqual(['SessionStarted']);
    expect(effects.calls).toEqual([]);

    const again = await planner.handle('s1', submit, { messageId: 'm1', now: 9_999 });
    expect(again.events.map((e) => e.type)).toEqual(['TasksPlanned', 'TaskDispatched']);
    const log = (await store.inner.readStream('s1')).events;
    expect(log.map((e) => e.type)).toEqual(['SessionStarted', 'TasksPlanned', 'TaskDispatched']);
    expect(new Set(log.map((e) => e.timestamp))).toEqual(new Set([1_000])); // the decision's own time
    expect(effects.calls.flat().map((c) => c.command.type)).toEqual(['ExecuteTask']);
  });

  it('records an input that breaks its schema (a library caller may pass anything) as rejected', async () => {
    const { planner, store } = setup();
    const first = await planner.handle('s1', submit, { messageId: 'm1' });
    const task = first.commands[0]!.command as { taskId: string; dispatchId: string };
    const bad = [
      { type: 'Bogus' },
      { type: 'TaskCompleted', taskId: task.taskId, dispatchId: task.dispatchId, output: { html: '<b>' } },
      null,
      { type: 'InvalidInput' },
    ] as unknown as PlannerInput[];
    for (const [i, input] of bad.entries()) await planner.handle('s1', input, { messageId: `bad-${i}` });
    const { events } = await store.readStream('s1');
    const rejected = events.filter((e) => e.type === 'InputRejected').map((e) => e.data as { reason: string; inputType?: string });
    expect(rejected).toEqual([
      { reason: 'unknown input type "Bogus"', inputType: 'Bogus', messageId: 'bad-0' },
      { reason: expect.stringMatching(/^invalid TaskCompleted: output: /), inputType: 'TaskCompleted', messageId: 'bad-1' },
      { reason: 'invalid input: (root): Invalid input: expected object, received null', messageId: 'bad-2' },
      { reason: 'invalid InvalidInput: reason: expected a string', messageId: 'bad-3' },
    ]);
    expect(events.some((e) => e.type === 'TaskCompleted')).toBe(false);
  });

  it('refuses meta the envelopes cannot carry, appending nothing (the log stays readable)', async () => {
    const { planner, store } = setup();
    const bad: Array<[Partial<InputMeta>, RegExp]> = [
      [{ messageId: 123 as unknown as string }, /^invalid meta: messageId: /],
      [{ messageId: '' }, /^invalid meta: messageId: /],
      [{ messageId: 'a\r\nNats-Msg-Id: b' }, /^invalid meta: messageId: no line breaks$/],
      [{ now: 'soon' as unknown as number }, /^invalid meta: now: /],
      [{ correlationId: 7 as unknown as string }, /^invalid meta: correlationId: /],
      [{ streamSequence: 'x' as unknown as number }, /^invalid meta: streamSequence: /],
    ];
    for (const [meta, message] of bad) {
      const refused = planner.handle('s1', submit, meta);
      await expect(refused).rejects.toSatisfy((e: unknown) => isValidationError(e));
      await expect(refused).rejects.toThrow(message);
    }
    expect((await store.readStream('s1')).exists).toBe(false);
  });

  it('a new input that changes nothing performs nothing', async () => {
    const { planner, effects } = setup();
    const first = await planner.handle('s1', submit, { messageId: 'm1' });
    const task = first.commands[0]!.command as { taskId: string };
    await planner.handle('s1', { type: 'RetryDue', taskId: task.taskId, attempt: 2 }, { messageId: 'r1' });
    expect(effects.perform).toHaveBeenCalledTimes(1);
  });

  it('fills in a message id and time when the meta leaves them out (even as explicit undefined)', async () => {
    const { planner } = setup();
    const a = await planner.handle('s1', submit);
    expect(a.events[0]).toMatchObject({ causationId: 'id-1', timestamp: 1_000, correlationId: 's1' });
    const b = await planner.handle('s1', { type: 'InvalidInput', reason: 'x' }, { messageId: undefined, correlationId: 'corr' });
    expect(b.events[0]).toMatchObject({ causationId: 'id-2', timestamp: 1_000, correlationId: 'corr' });
  });

  it('logs each appended event at debug level', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    const store = new MemoryEventStore();
    const planner = new Planner({
      store,
      repository: new SessionRepository({ store }),
      decideDeps: defaultDecideDeps(),
      effects: { perform: () => {} },
      clock: () => 1,
      newId: () => 'n',
      logger,
    });
    const commit = await planner.handle('s1', submit, { messageId: 'm1' });
    const eventLines = lines.filter((l) => l.sessionId === 's1' && l.seq !== undefined);
    expect(eventLines.map((l) => l.msg)).toEqual(commit.events.map((e) => e.type));
    expect(eventLines[2]).toMatchObject({ causationId: 'm1', seq: 3, correlationId: 's1' });
    expect(typeof eventLines[2]!.taskId).toBe('string');
  });
});

describe('toOutbox', () => {
  it('uses the dispatch id for work and a stable per-version id for questions', async () => {
    const store = new MemoryEventStore();
    const planner = new Planner({
      store,
      repository: new SessionRepository({ store }),
      decideDeps: defaultDecideDeps(),
      effects: { perform: () => {} },
      clock: () => 1,
      newId: () => 'n',
      logger: silentLogger,
    });
    const commit = await planner.handle('s1', { type: 'SubmitInput', text: '- Which format do you want?' }, { messageId: 'm1', correlationId: 'c9' });
    const asked = commit.events.find((e) => e.type === 'ClarificationRequested');
    expect(asked).toBeDefined();
    const taskId = (asked!.data as { taskId: string }).taskId;
    expect(commit.commands).toEqual([
      {
        id: `s1.${taskId}.ask.${commit.state.version}`,
        sessionId: 's1',
        causationId: 'm1',
        correlationId: 'c9',
        command: { type: 'RequestClarification', sessionId: 's1', taskId, question: 'Which format do you want?' },
      },
    ]);
    expect(toOutbox([], commit.state, { messageId: 'x', now: 0 })).toEqual([]);
  });
});
