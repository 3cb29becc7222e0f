import { describe, expect, it, vi } from 'vitest';
import { Planner } from '../../src/actors/planner.js';
import type { RetryScheduler } from '../../src/actors/retryScheduler.js';
import { SessionRepository } from '../../src/actors/sessionRepository.js';
import { CorruptLogError, StoreUnavailableError } from '../../src/errors.js';
import { outstanding } from '../../src/machines/sessionQueries.js';
import type { SessionState } from '../../src/machines/sessionState.js';
import { silentLogger } from '../../src/observability/logger.js';
import type { OutboxCommand } from '../../src/protocol/commands.js';
import { hasLatestEvents, type EventStore, type LatestEvents, type ReadOptions } from '../../src/persistence/eventStore.js';
import { createEmbeddedRuntime, defaultDecideDeps } from '../../src/runtime/embeddedRuntime.js';
import { recoverSessions } from '../../src/service/recovery.js';

describe('recoverSessions', () => {
  it('re-issues the running task of an active session and skips ended ones without folding them', async () => {
    const runtime = await createEmbeddedRuntime();
    const { planner, store, repository } = runtime;
    const done = await planner.handle('done', { type: 'SubmitInput', text: 'Summarise the notes.' });
    const task = done.events.find((e) => e.type === 'TaskDispatched')!.data as { taskId: string; dispatchId: string };
    await planner.handle('done', { type: 'TaskCompleted', ...task, output: 'summarised' });
    await planner.handle('gone', { type: 'SubmitInput', text: 'Summarise the logs.' });
    await planner.handle('gone', { type: 'CancelSession', reason: 'not needed' });
    await planner.handle('live', { type: 'SubmitInput', text: 'Summarise the report.' });

    const performed: OutboxCommand[] = [];
    const watched: string[] = [];
    const load = vi.spyOn(repository, 'load');
    const result = await recoverSessions({
      store, repository, clock: () => 1_000, logger: silentLogger,
      effects: { perform: (commands) => void performed.push(...commands) },
      retries: { watch: (state: { sessionId: string }) => void watched.push(state.sessionId) } as unknown as RetryScheduler,
    });

    expect(result).toEqual({ sessions: 1, republished: 1, timers: 0, failed: 0, ended: 2, deferred: [] });
    expect(load.mock.calls.map(([id]) => id)).toEqual(['live']);
    expect(performed.map((c) => [c.command.type, c.sessionId])).toEqual([['ExecuteTask', 'live']]);
    expect(watched).toEqual(['live']);
    await runtime.close();
  });

  it('with a store that scans the latest events, reads no ended session one by one and still recovers the open ones', async () => {
    const w = await endedAndOpenSessions();
    const counted = countingStore(w.runtime.store, { scan: true });
    const repository = new SessionRepository({ store: counted.store });
    const result = await recoverSessions({ ...w.options, store: counted.store, repository });

    expect(result).toEqual({ sessions: 1, republished: 1, timers: 0, failed: 0, ended: 2, deferred: [] });
    expect(counted.scans).toBe(1);
    // Only the sessions not ended by their latest event are read, each once (its load), none by
    // `last: 1`: 'late' (an InputRejected after its end) is loaded and found not active.
    expect(counted.reads.map(([id]) => id).sort()).toEqual(['late', 'live']);
    expect(counted.reads.filter(([, options]) => options?.last !== undefined)).toEqual([]);
    expect(w.performed.map((c) => [c.command.type, c.sessionId])).toEqual([['ExecuteTask', 'live']]);
    expect(w.watched).toEqual(['live']);
    await w.runtime.close();
  });

  it('without the scan (a store without it, or given sessions), reads the latest event of each session first, with the same result', async () => {
    const w = await endedAndOpenSessions();
    for (const [scan, sessionIds] of [[false, undefined], [true, ['done', 'gone', 'late', 'live']]] as const) {
      const counted = countingStore(w.runtime.store, { scan });
      const repository = new SessionRepository({ store: counted.store });
      const result = await recoverSessions({ ...w.options, store: counted.store, repository, ...(sessionIds ? { sessionIds } : {}) });
      expect(result).toEqual({ sessions: 1, republished: 1, timers: 0, failed: 0, ended: 2, deferred: [] });
      expect(counted.scans).toBe(0);
      const latest = counted.reads.filter(([, options]) => options?.last === 1).map(([id]) => id);
      expect(latest.sort()).toEqual(['done', 'gone', 'late', 'live']);
    }
    await w.runtime.close();
  });

  it('reads the sessions one by one when the scan meets a store failure (a purge removing messages mid-scan)', async () => {
    const w = await endedAndOpenSessions();
    const counted = countingStore(w.runtime.store, { scan: true, scanFails: new StoreUnavailableError('messages were removed during the read') });
    const repository = new SessionRepository({ store: counted.store });
    const result = await recoverSessions({ ...w.options, store: counted.store, repository });
    expect(result).toMatchObject({ sessions: 1, republished: 1, ended: 2 });
    await w.runtime.close();
  });

  it('fails the whole recovery, for its caller to retry, when the store is down (the scan and the listing fail)', async () => {
    const w = await endedAndOpenSessions();
    const counted = countingStore(w.runtime.store, { scan: true, scanFails: new StoreUnavailableError('no responders') });
    const down: EventStore & LatestEvents = { ...(counted.store as EventStore & LatestEvents), listStreams: () => Promise.reject(new StoreUnavailableError('no responders')) };
    const repository = new SessionRepository({ store: down });
    await expect(recoverSessions({ ...w.options, store: down, repository })).rejects.toThrow('no responders');
    expect(w.performed).toEqual([]);
    await w.runtime.close();
  });

  it('reads the sessions one by one when the scan meets a latest event it cannot read, so that only that session fails', async () => {
    const w = await endedAndOpenSessions();
    const counted = countingStore(w.runtime.store, { scan: true, scanFails: new CorruptLogError('seq 9: not JSON') });
    const repository = new SessionRepository({ store: counted.store });
    const result = await recoverSessions({ ...w.options, store: counted.store, repository });
    expect(result).toEqual({ sessions: 1, republished: 1, timers: 0, failed: 0, ended: 2, deferred: [] });
    expect(counted.reads.filter(([, options]) => options?.last === 1)).toHaveLength(4);
    await w.runtime.close();
  });

  it('after another instance advanced a session, re-issues what the log says it waits on, not what this instance cached in an earlier term', async () => {
    const runtime = await createEmbeddedRuntime();
    const { planner, store, repository } = runtime;
    // This instance led once: its repository caches the session with task 1 running (dispatch D1).
    const first = await planner.handle('s', { type: 'SubmitInput', text: 'Summarise the report.' });
    const d1 = first.events.find((e) => e.type === 'TaskDispatched')!.data as { taskId: string; dispatchId: string };

    // Meanwhile another instance led: it applied a retryable failure of D1 (a retry timer now, no dispatch).
    const other = new Planner({
      store, repository: new SessionRepository({ store }), decideDeps: defaultDecideDeps(),
      effects: { perform: () => undefined }, clock: Date.now, newId: () => crypto.randomUUID(), logger: silentLogger,
    });
    const failed = await other.handle('s', { type: 'TaskFailed', ...d1, error: 'flaky', retryable: true });
    expect(outstanding(failed.state).command).toBeUndefined();
    expect(outstanding(failed.state).retry).toBeDefined();

    // This instance leads again and recovers.
    const performed: OutboxCommand[] = [];
    const watched: SessionState[] = [];
    const result = await recoverSessions({
      store, repository, clock: () => Date.now(), logger: silentLogger,
      effects: { perform: (commands) => void performed.push(...commands) },
      retries: { watch: (state: SessionState) => void watched.push(state) } as unknown as RetryScheduler,
    });

    // The session waits on its retry timer: D1 is not published again, and the timer is armed from
    // the log's state (a stale state would arm nothing, and the session would wait forever).
    expect(performed).toEqual([]);
    expect(result).toMatchObject({ sessions: 1, republished: 0, timers: 1 });
    expect(watched.map((st) => st.version)).toEqual([failed.state.version]);
    await runtime.close();
  });

  it('retries a session that fails for a transient reason instead of skipping it', async () => {
    const w = await twoLiveSessions();
    const load = w.repository.load.bind(w.repository);
    // NATS away for a moment during the failover: the first load of 'b' fails.
    let failures = 0;
    vi.spyOn(w.repository, 'load').mockImplementation(async (id) => {
      if (id === 'b' && failures++ === 0) throw new StoreUnavailableError('no responders');
      return load(id);
    });
    const result = await recoverSessions({ ...w.options, retryDelayMs: 1 });
    expect(result).toMatchObject({ sessions: 2, republished: 2, failed: 0 });
    expect(w.performed.map((c) => c.sessionId).sort()).toEqual(['a', 'b']);
    expect(w.watched.sort()).toEqual(['a', 'b']);
    await w.runtime.close();
  });

  it('fails the whole recovery, for its caller to retry, when a transient failure persists', async () => {
    const w = await twoLiveSessions();
    const load = w.repository.load.bind(w.repository);
    vi.spyOn(w.repository, 'load').mockImplementation(async (id) => {
      if (id === 'b') throw new StoreUnavailableError('no responders');
      return load(id);
    });
    await expect(recoverSessions({ ...w.options, retryDelayMs: 1 })).rejects.toThrow('no responders');
    await w.runtime.close();
  });

  it('with deferFailing, a session a store failure keeps from recovering is deferred and the others are recovered', async () => {
    const w = await twoLiveSessions();
    const load = w.repository.load.bind(w.repository);
    let down = true;
    vi.spyOn(w.repository, 'load').mockImplementation(async (id) => {
      if (id === 'b' && down) throw new StoreUnavailableError('timeout');
      return load(id);
    });
    const first = await recoverSessions({ ...w.options, retryDelayMs: 1, deferFailing: true });
    expect(first).toMatchObject({ sessions: 1, republished: 1, failed: 0, deferred: ['b'] });
    expect(w.performed.map((c) => c.sessionId)).toEqual(['a']);
    // Later, the deferred one alone, once the store answers again.
    down = false;
    const again = await recoverSessions({ ...w.options, sessionIds: first.deferred, deferFailing: true });
    expect(again).toMatchObject({ sessions: 1, republished: 1, deferred: [] });
    expect(w.performed.map((c) => c.sessionId)).toEqual(['a', 'b']);
    await w.runtime.close();
  });

  for (const [what, error] of [
    ['is corrupt', new CorruptLogError('seq 3: not JSON')],
    ['does not fold (inconsistent with the machines)', new Error('session b: event 4 does not follow version 2')],
  ] as const) {
    it(`skips and counts a session whose log ${what}; the others are recovered`, async () => {
      const w = await twoLiveSessions();
      const load = w.repository.load.bind(w.repository);
      let loads = 0;
      vi.spyOn(w.repository, 'load').mockImplementation(async (id) => {
        if (id !== 'b') return load(id);
        loads++;
        throw error;
      });
      const result = await recoverSessions({ ...w.options, retryDelayMs: 1 });
      expect(result).toMatchObject({ sessions: 1, republished: 1, failed: 1 });
      expect(loads).toBe(1); // the same every time: not retried
      expect(w.performed.map((c) => c.sessionId)).toEqual(['a']);
      await w.runtime.close();
    });
  }
});

/** Two sessions with a running task each, and the options of a recovery over them. */
async function twoLiveSessions() {
  const runtime = await createEmbeddedRuntime();
  const { planner, store, repository } = runtime;
  await planner.handle('a', { type: 'SubmitInput', text: 'Summarise the report.' });
  await planner.handle('b', { type: 'SubmitInput', text: 'Summarise the notes.' });
  const performed: OutboxCommand[] = [];
  const watched: string[] = [];
  const options = {
    store, repository, clock: () => 1_000, logger: silentLogger,
    effects: { perform: (commands: OutboxCommand[]) => void performed.push(...commands) },
    retries: { watch: (state: { sessionId: string }) => void watched.push(state.sessionId) } as unknown as RetryScheduler,
  };
  return { runtime, repository, performed, watched, options };
}

/**
 * Sessions 'done' (completed), 'gone' (cancelled), 'late' (completed, then an input rejected: its
 * latest event does not end it) and 'live' (a task running), and the options of a recovery.
 */
async function endedAndOpenSessions() {
  const runtime = await createEmbeddedRuntime();
  const { planner } = runtime;
  for (const id of ['done', 'late']) {
    const started = await planner.handle(id, { type: 'SubmitInput', text: 'Summarise the notes.' });
    const task = started.events.find((e) => e.type === 'TaskDispatched')!.data as { taskId: string; dispatchId: string };
    await planner.handle(id, { type: 'TaskCompleted', ...task, output: 'summarised' });
  }
  const rejected = await planner.handle('late', { type: 'SubmitInput', text: 'And the logs.' });
  expect(rejected.events.map((e) => e.type)).toEqual(['InputRejected']);
  await planner.handle('gone', { type: 'SubmitInput', text: 'Summarise the logs.' });
  await planner.handle('gone', { type: 'CancelSession', reason: 'not needed' });
  await planner.handle('live', { type: 'SubmitInput', text: 'Summarise the report.' });
  const performed: OutboxCommand[] = [];
  const watched: string[] = [];
  const options = {
    store: runtime.store, repository: runtime.repository, clock: () => 1_000, logger: silentLogger,
    effects: { perform: (commands: OutboxCommand[]) => void performed.push(...commands) },
    retries: { watch: (state: { sessionId: string }) => void watched.push(state.sessionId) } as unknown as RetryScheduler,
  };
  return { runtime, performed, watched, options };
}

/**
 * `store` with its readStream calls recorded; with `scan`, it has LatestEvents (counting scans),
 * whose scan fails with `scanFails` if given.
 */
function countingStore(store: EventStore, o: { scan: boolean; scanFails?: Error }) {
  const reads: Array<[string, ReadOptions | undefined]> = [];
  let scans = 0;
  const counted: EventStore = {
    appendToStream: (id, events, options) => store.appendToStream(id, events, options),
    readStream: (id, options) => {
      reads.push([id, options]);
      return store.readStream(id, options);
    },
    listStreams: () => store.listStreams(),
    readAll: () => store.readAll(),
    close: () => store.close(),
  };
  const scanning: EventStore & LatestEvents = {
    ...counted,
    async *latestEvents() {
      scans++;
      if (o.scanFails) throw o.scanFails;
      if (!hasLatestEvents(store)) throw new Error('the store under test has no scan');
      yield* store.latestEvents();
    },
  };
  return {
    store: o.scan ? scanning : counted,
    reads,
    get scans() {
      return scans;
    },
  };
}
