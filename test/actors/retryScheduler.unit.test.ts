import { FakeTimers } from '../support/fakeTimers.js';
import { describe, expect, it, vi } from 'vitest';
import { Planner } from '../../src/actors/planner.js';
import { RetryScheduler } from '../../src/actors/retryScheduler.js';
import { realTimers } from '../../src/actors/timers.js';
import { SessionRepository } from '../../src/actors/sessionRepository.js';
import { dispatchIdFor, outstanding } from '../../src/machines/sessionQueries.js';
import { silentLogger } from '../../src/observability/logger.js';
import { StoreUnavailableError } from '../../src/errors.js';
import { MemoryEventStore } from '../../src/persistence/memoryEventStore.js';
import type { OutboxCommand } from '../../src/protocol/commands.js';
import type { DomainEvent } from '../../src/protocol/events.js';
import { defaultDecideDeps } from '../../src/runtime/embeddedRuntime.js';

function setup() {
  let now = 1_000;
  const clock = () => now;
  const store = new MemoryEventStore();
  const repository = new SessionRepository({ store });
  const performed: OutboxCommand[] = [];
  let n = 0;
  const planner = new Planner({
    store,
    repository,
    decideDeps: defaultDecideDeps(),
    effects: { perform: (c) => void performed.push(...c) },
    clock,
    newId: () => `m${++n}`,
    logger: silentLogger,
  });
  const timers = new FakeTimers();
  const logger = { error: vi.fn() } as unknown as typeof silentLogger;
  const scheduler = new RetryScheduler(planner, clock, logger, timers);
  const events: DomainEvent[] = [];
  planner.onCommit((c) => events.push(...c.events));
  /** Starts a one-task session and fails its first attempt: the session is then in backoff. */
  async function intoBackoff(sessionId = 's1') {
    const start = await planner.handle(sessionId, {
      type: 'SubmitInput',
      text: '- Fetch the data',
      config: { backoff: { baseMs: 250, factor: 2, maxMs: 10_000 } },
    });
    const d = start.events.find((e) => e.type === 'TaskDispatched')!;
    const { taskId, dispatchId } = d.data as { taskId: string; dispatchId: string };
    const failed = await planner.handle(sessionId, { type: 'TaskFailed', taskId, dispatchId, error: 'flaky' });
    // The dispatch id of an attempt, in the run the session's start drew.
    const dispatchOf = (attempt: number) => dispatchIdFor(sessionId, taskId, attempt, start.state.snapshot.context.runId);
    expect(dispatchId).toBe(dispatchOf(1));
    return { taskId, failed, dispatchOf };
  }
  return { planner, timers, scheduler, store, repository, performed, events, logger, intoBackoff, advance: (ms: number) => (now += ms) };
}

describe('RetryScheduler', () => {
  it('arms a timer at dueAt - now and feeds RetryDue into the planner, which dispatches the retry', async () => {
    const w = setup();
    const { taskId, failed, dispatchOf } = await w.intoBackoff();
    const scheduled = failed.events.find((e) => e.type === 'TaskRetryScheduled')!;
    expect(scheduled.data).toMatchObject({ taskId, attempt: 2, dueAt: 1_250 });
    expect(w.timers.delays()).toEqual([250]);

    const dispatchedBefore = w.performed.length;
    w.advance(250); // now = dueAt
    w.timers.fireAll();
    await vi.waitFor(() => expect(w.performed.length).toBe(dispatchedBefore + 1));
    const retry = w.performed.at(-1)!;
    expect(retry.command).toMatchObject({ type: 'ExecuteTask', taskId, attempt: 2, dispatchId: dispatchOf(2) });
    // The RetryDue's message id names the dispatch it is due for.
    expect(retry.causationId).toBe(`retry.${dispatchOf(2)}`);
    const dispatched = w.events.filter((e) => e.type === 'TaskDispatched');
    expect(dispatched.at(-1)).toMatchObject({ causationId: `retry.${dispatchOf(2)}`, data: { attempt: 2 } });
    // The session left backoff: nothing is armed any more.
    expect(w.timers.pending.size).toBe(0);
    expect(w.logger.error).not.toHaveBeenCalled();
  });

  it('a restarted runtime re-arms from state with what is left of the wait', async () => {
    const w = setup();
    await w.intoBackoff();
    w.scheduler.close();
    w.advance(100);
    const timers = new FakeTimers();
    const restarted = new RetryScheduler(w.planner, () => 1_100, w.logger, timers);
    restarted.watch(await new SessionRepository({ store: w.store }).load('s1'));
    expect(timers.delays()).toEqual([150]);
    restarted.close();
  });

  it('re-arming with the same retry is a no-op; a timer that fires twice is harmless', async () => {
    const w = setup();
    const { taskId, dispatchOf } = await w.intoBackoff();
    const state = await w.repository.load('s1');
    expect(outstanding(state).retry).toMatchObject({ taskId, attempt: 2 });
    w.scheduler.watch(state);
    w.scheduler.watch(state);
    expect(w.timers.history).toEqual([250]);
    expect(w.timers.cleared).toEqual([]);

    const [timer] = [...w.timers.pending.values()];
    w.advance(250);
    timer!.fn();
    await vi.waitFor(() => expect(w.performed.filter((c) => c.command.type === 'ExecuteTask')).toHaveLength(2));
    const version = (await w.repository.load('s1')).version;
    timer!.fn(); // the same RetryDue message id again
    await w.planner.drain();
    expect((await w.repository.load('s1')).version).toBe(version);
    // Nothing new is dispatched; at most the running attempt is sent again, under its dispatch id.
    const sent = w.performed.filter((c) => c.command.type === 'ExecuteTask').map((c) => c.id);
    expect(new Set(sent)).toEqual(new Set([dispatchOf(1), dispatchOf(2)]));
  });

  it('disarms when the session leaves backoff some other way', async () => {
    const w = setup();
    await w.intoBackoff();
    expect(w.timers.pending.size).toBe(1);
    await w.planner.handle('s1', { type: 'CancelSession', reason: 'enough' });
    expect(w.timers.pending.size).toBe(0);
    expect(w.timers.cleared).toHaveLength(1);
  });

  it('an older state (a recovery that read the session before a newer commit) does not undo a newer timer', async () => {
    const w = setup();
    const start = await w.planner.handle('s1', { type: 'SubmitInput', text: '- Fetch the data', config: { backoff: { baseMs: 250, factor: 2, maxMs: 10_000 } } });
    const before = start.state; // read by a slow recovery: no retry due yet
    const d = start.events.find((e) => e.type === 'TaskDispatched')!;
    const { taskId, dispatchId } = d.data as { taskId: string; dispatchId: string };
    await w.planner.handle('s1', { type: 'TaskFailed', taskId, dispatchId, error: 'flaky' }); // arms the retry
    expect(w.timers.pending.size).toBe(1);
    w.scheduler.watch(before); // the recovery's stale state comes in late
    expect(w.timers.pending.size).toBe(1);
    expect(w.timers.cleared).toHaveLength(0);
  });

  it('arms the retry of an append that landed but reported an error, when its redelivered report is found applied', async () => {
    const w = setup();
    const start = await w.planner.handle('s1', { type: 'SubmitInput', text: '- Fetch the data', config: { backoff: { baseMs: 250, factor: 2, maxMs: 10_000 } } });
    const { taskId, dispatchId } = start.events.find((e) => e.type === 'TaskDispatched')!.data as { taskId: string; dispatchId: string };
    const append = w.store.appendToStream.bind(w.store);
    w.store.appendToStream = async (id, events, options) => {
      await append(id, events, options);
      throw new StoreUnavailableError('the PubAck was lost');
    };
    const report = { type: 'TaskFailed' as const, taskId, dispatchId, error: 'flaky' };
    await expect(w.planner.handle('s1', report, { messageId: 'rep1' })).rejects.toThrow('the PubAck was lost');
    expect(w.timers.pending.size).toBe(0);
    w.store.appendToStream = append;
    // The consumer naks; redelivered, the report changes nothing: the log already has its events.
    expect((await w.planner.handle('s1', report, { messageId: 'rep1' })).events).toEqual([]);
    expect(w.timers.delays()).toEqual([250]);
  });

  it('arms the retries of a new run under a session id used before (purged), whatever the old run\'s version', async () => {
    const w = setup();
    const old = await w.intoBackoff('s1');
    for (let i = 0; i < 5; i++) await w.planner.handle('s1', { type: 'SubmitInput', text: `- More ${i}` });
    await w.planner.handle('s1', { type: 'CancelSession' });
    expect(w.timers.pending.size).toBe(0);
    // The log purged, the id reused: a new run from version 1 (the repository forgets the old one).
    const fresh = setup();
    fresh.advance(60_000); // another start: another run id
    const again = await fresh.intoBackoff('s1');
    expect(again.failed.state.snapshot.context.runId).not.toBe(old.failed.state.snapshot.context.runId);
    expect(again.failed.state.version).toBeLessThan(old.failed.state.version + 6);
    w.advance(60_000);
    w.scheduler.watch(again.failed.state);
    expect(w.timers.delays()).toEqual([250]);
  });

  it('keeps one timer per session', async () => {
    const w = setup();
    await w.intoBackoff('a');
    await w.intoBackoff('b');
    expect(w.timers.delays()).toEqual([250, 250]);
    await w.planner.handle('a', { type: 'CancelSession' });
    expect(w.timers.pending.size).toBe(1);
  });

  it('close clears every timer and arms nothing afterwards', async () => {
    const w = setup();
    await w.intoBackoff('a');
    await w.intoBackoff('b');
    w.scheduler.close();
    expect(w.timers.pending.size).toBe(0);
    await w.intoBackoff('c');
    expect(w.timers.pending.size).toBe(0);
  });

  it('waits out a retry due beyond the longest Node timer in capped steps, without firing early', async () => {
    const w = setup();
    await w.intoBackoff(); // due at 1_250 on the planner's clock
    w.scheduler.close();
    // Seen from a clock 30 days earlier, the retry is due beyond 2^31-1 ms: Node would fire such a
    // timer after 1 ms, so the scheduler arms the longest it can and re-arms for the rest.
    const MAX = 2 ** 31 - 1;
    let now = 1_250 - 30 * 86_400_000;
    const timers = new FakeTimers();
    const scheduler = new RetryScheduler(w.planner, () => now, w.logger, timers);
    scheduler.watch(await w.repository.load('s1'));
    expect(timers.delays()).toEqual([MAX]);
    const dispatched = w.performed.length;
    now += MAX;
    timers.fireAll();
    expect(timers.delays()).toEqual([30 * 86_400_000 - MAX]);
    expect(w.performed.length).toBe(dispatched); // not due yet: nothing sent
    now = 1_250;
    w.advance(250); // the planner's clock agrees: the retry is due
    timers.fireAll();
    await vi.waitFor(() => expect(w.performed.length).toBe(dispatched + 1));
    scheduler.close();
  });

  it('real timers never ask Node for more than 2^31-1 ms', () => {
    const spy = vi.spyOn(globalThis, 'setTimeout');
    try {
      const handle = realTimers.set(2 ** 40, () => undefined);
      realTimers.clear(handle);
      expect(spy).toHaveBeenCalledWith(expect.any(Function), 2 ** 31 - 1);
    } finally {
      spy.mockRestore();
    }
  });

  it('logs a RetryDue the planner could not apply and tries again a second later', async () => {
    const w = setup();
    await w.intoBackoff();
    await w.store.close();
    w.advance(250);
    w.timers.fireAll();
    await vi.waitFor(() =>
      expect(w.logger.error).toHaveBeenCalledWith(expect.objectContaining({ sessionId: 's1' }), 'retry failed; trying again'),
    );
    expect(w.timers.delays()).toEqual([1_000]);
  });
});
