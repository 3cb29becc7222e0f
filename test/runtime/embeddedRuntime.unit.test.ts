import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { HEADER, type Bus, type BusMessage } from '../../src/actors/bus.js';
import type { Commit } from '../../src/actors/planner.js';
import { startBusExecutor } from '../../src/executors/busExecutor.js';
import { demoHandler } from '../../src/executors/demoExecutor.js';
import type { ExecutorReport, TaskHandler } from '../../src/executors/report.js';
import { dispatchIdFor, toPlannerState } from '../../src/machines/sessionQueries.js';
import { FileInbox, MemoryInbox } from '../../src/persistence/inbox.js';
import type { ExecuteTask, RequestClarification } from '../../src/protocol/commands.js';
import type { DomainEvent } from '../../src/protocol/events.js';
import { createEmbeddedRuntime, defaultDecideDeps, type EmbeddedRuntime } from '../../src/runtime/embeddedRuntime.js';

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((res) => (resolve = res));
  return { promise, resolve };
}

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'jetplan-runtime-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Resolves with the session's events once it reaches a final event. */
function whenFinished(rt: EmbeddedRuntime, sessionId: string): Promise<DomainEvent> {
  return new Promise((resolve) => {
    rt.planner.onCommit((c: Commit) => {
      if (c.sessionId !== sessionId) return;
      const last = c.events.find((e) => e.type === 'SessionCompleted' || e.type === 'SessionFailed' || e.type === 'SessionCancelled');
      if (last) resolve(last);
    });
  });
}

/** Wraps a handler to count executions by dispatch id. */
function counting(handler: TaskHandler) {
  const runs = new Map<string, number>();
  const wrapped: TaskHandler = (task, tools) => {
    runs.set(task.dispatchId, (runs.get(task.dispatchId) ?? 0) + 1);
    return handler(task, tools);
  };
  return { runs, handler: wrapped };
}

/** Answers every question through the bus, as a human client would. */
function answerQuestions(rt: EmbeddedRuntime, answer = 'prod'): BusMessage[] {
  const asked: BusMessage[] = [];
  rt.bus.subscribe(rt.subjects.allClarify, async (m) => {
    asked.push(m);
    const q = m.data as RequestClarification;
    await rt.bus.publish(
      rt.subjects.input(q.sessionId),
      { type: 'ProvideClarification', taskId: q.taskId, answer },
      { [HEADER.messageId]: `answer.${m.headers[HEADER.messageId]}` },
    );
  });
  return asked;
}

const demoText = '- Fetch https://example.com/data.\n- Summarise the flaky results\n- Which format do you want?\n- Deploy the report';

describe('embedded runtime', () => {
  it('runs a whole session in memory: dispatch, retry, both kinds of clarification, completion', async () => {
    const rt = await createEmbeddedRuntime();
    cleanups.push(() => rt.close());
    const { runs, handler } = counting(demoHandler);
    const stop = startBusExecutor({ bus: rt.bus, subjects: rt.subjects, handler, inbox: new MemoryInbox<ExecutorReport>(), logger: rt.logger });
    cleanups.push(stop);
    const asked = answerQuestions(rt);
    const finished = whenFinished(rt, 'demo');

    await rt.planner.handle('demo', { type: 'SubmitInput', text: demoText, config: { backoff: { baseMs: 1, factor: 2, maxMs: 10 } } });
    expect((await finished).type).toBe('SessionCompleted');

    const { events } = await rt.store.readStream('demo');
    const dispatched = events.filter((e) => e.type === 'TaskDispatched').map((e) => (e.data as { dispatchId: string }).dispatchId);
    // Each dispatch ran exactly once; the flaky task and the deploy task ran twice (two dispatches).
    expect([...runs.keys()].sort()).toEqual([...dispatched].sort());
    expect([...runs.values()].every((n) => n === 1)).toBe(true);
    const state = toPlannerState(await rt.repository.load('demo'));
    expect(state.status).toBe('completed');
    expect(state.tasks.map((t) => [t.kind, t.status, t.attempts])).toEqual([
      ['ToolCall', 'Completed', 1],
      ['Processing', 'Completed', 2],
      ['Clarification', 'Completed', 0],
      ['Processing', 'Completed', 2],
    ]);
    expect(state.tasks[0]!.result).toBe('ran: Fetch https://example.com/data. [https://example.com/data]');

    // The flaky task went through the retry scheduler: a RetryDue input dispatched attempt 2.
    const flaky = state.tasks[1]!;
    expect(events.find((e) => e.type === 'TaskRetryScheduled')).toMatchObject({ data: { taskId: flaky.id, attempt: 2 } });
    expect(events.find((e) => e.type === 'TaskDispatched' && (e.data as { attempt: number }).attempt === 2 && e.data.taskId === flaky.id)).toMatchObject({
      // Its message id is the dispatch id of the attempt it made due (in the session's run).
      causationId: `retry.${dispatchIdFor('demo', flaky.id, 2, (await rt.repository.load('demo')).snapshot.context.runId)}`,
    });

    // Two questions: the Clarification-kind task, and the one the executor raised for "Deploy".
    expect(asked.map((m) => (m.data as RequestClarification).question)).toEqual([
      'Which format do you want?',
      'Which target should "deploy" use for: Deploy the report',
    ]);
    expect(asked.every((m) => m.subject === 'jetplan.clarify.demo' && m.headers[HEADER.type] === 'RequestClarification')).toBe(true);
    expect(state.tasks[3]!.answer).toBe('prod');

    expect(rt.metrics).toMatchObject({ sessionsCompleted: 1, tasksFailed: 1, clarifications: 2, tasksCompleted: 3, tasksDispatched: 5 });
    // Every command was delivered and marked so.
    await vi.waitFor(async () => expect(await rt.store.pendingCommands()).toEqual([]));
    expect(await rt.recover()).toEqual({ sessions: 0, commands: 0 });
  });

  it('plans with the decideDeps it is given, and refuses an empty dataDir (not a memory store in disguise)', async () => {
    const plans: string[] = [];
    const base = defaultDecideDeps();
    const rt = await createEmbeddedRuntime({ decideDeps: { ...base, plan: (text, start) => (plans.push(text), base.plan(text, start)) } });
    cleanups.push(() => rt.close());
    await rt.planner.handle('s1', { type: 'SubmitInput', text: 'Summarise the notes.' });
    expect(plans).toEqual(['Summarise the notes.']);
    await expect(createEmbeddedRuntime({ dataDir: ' ' })).rejects.toThrow('dataDir must not be empty (omit it for an in-memory store)');
  });

  it('turns an invalid bus input into InputRejected with the reason', async () => {
    let ids = 0;
    const rt = await createEmbeddedRuntime({ clock: () => 42, newId: () => `generated-${++ids}` });
    cleanups.push(() => rt.close());
    await rt.bus.publish(rt.subjects.input('s1'), { type: 'SubmitInput', text: 42 }, { [HEADER.messageId]: 'bad-1', [HEADER.correlationId]: 'corr-1' });
    await rt.bus.publish(rt.subjects.input('s1'), { type: 'Nonsense' });
    await rt.bus.publish(rt.subjects.input('s1'), 'not even an object');
    const { events } = await rt.store.readStream('s1');
    expect(events.map((e) => e.type)).toEqual(['InputRejected', 'InputRejected', 'InputRejected']);
    expect(events[0]).toMatchObject({
      causationId: 'bad-1',
      correlationId: 'corr-1',
      timestamp: 42,
      data: { messageId: 'bad-1', reason: expect.stringMatching(/^invalid SubmitInput: text/) },
    });
    expect(events[1]).toMatchObject({ causationId: 'generated-1', correlationId: 's1', data: { reason: expect.stringContaining('Nonsense') } });
    expect((events[2]!.data as { reason: string }).reason).toMatch(/\S/);
    expect(rt.metrics.inputsRejected).toBe(3);

    // A valid input over the bus is applied; its message id is the idempotency key.
    const submit = { type: 'SubmitInput', text: '- Fetch the data' };
    await rt.bus.publish(rt.subjects.input('s2'), { type: 'CancelSession' }, { [HEADER.messageId]: 'c1' });
    await rt.bus.publish(rt.subjects.input('s1'), submit, { [HEADER.messageId]: 'ok-1' });
    await rt.bus.publish(rt.subjects.input('s1'), submit, { [HEADER.messageId]: 'ok-1' });
    const after = await rt.store.readStream('s1');
    expect(after.events.filter((e) => e.type === 'TasksPlanned')).toHaveLength(1);
  });

  it('an input the planner cannot apply rejects the publish, so the publisher keeps it', async () => {
    const error = vi.fn();
    const logger = { error, warn: vi.fn(), info: vi.fn(), debug: vi.fn(), isLevelEnabled: () => false } as unknown as EmbeddedRuntime['logger'];
    const rt = await createEmbeddedRuntime({ logger });
    await rt.store.close();
    await expect(rt.bus.publish(rt.subjects.input('s1'), { type: 'CancelSession' })).rejects.toMatchObject({ name: 'StoreUnavailableError' });
    expect(error).toHaveBeenCalledWith(expect.objectContaining({ sessionId: 's1' }), 'input not applied');
    await rt.close();
  });

  it('recovers after a crash: the held dispatch is re-issued and run once, the session completes', async () => {
    const dir = await tempDir();
    const inboxPath = join(await tempDir(), 'executor-inbox.jsonl');
    const rt1 = await createEmbeddedRuntime({ dataDir: dir }); // fsync on (the default)

    // Executor 1 holds every task of session "held" and runs others normally.
    const entered = deferred<ExecuteTask>();
    const release = deferred();
    const stop1 = startBusExecutor({
      bus: rt1.bus,
      subjects: rt1.subjects,
      inbox: await FileInbox.open<ExecutorReport>(inboxPath),
      logger: rt1.logger,
      handler: async (task, tools) => {
        if (task.sessionId !== 'held') return demoHandler(task, tools);
        entered.resolve(task);
        await release.promise;
        return { type: 'completed', output: 'too late' };
      },
    });
    // A session that completes before the crash is not recovered.
    const doneFirst = whenFinished(rt1, 'done');
    await rt1.planner.handle('done', { type: 'SubmitInput', text: '- Fetch the data' });
    await doneFirst;

    await rt1.planner.handle('held', { type: 'SubmitInput', text: '- Fetch the data\n- Summarise the results' });
    const held = await entered.promise;
    expect(toPlannerState(await rt1.repository.load('held')).tasks[0]!.status).toBe('Running');

    // Crash: the store goes away with the executor still working and nothing reported.
    await rt1.store.close();

    const rt2 = await createEmbeddedRuntime({ dataDir: dir, fsync: false });
    cleanups.push(async () => {
      release.resolve();
      await rt1.close();
      await stop1();
    });
    cleanups.push(() => rt2.close());
    const { runs, handler } = counting(demoHandler);
    const stop2 = startBusExecutor({ bus: rt2.bus, subjects: rt2.subjects, handler, inbox: await FileInbox.open<ExecutorReport>(inboxPath), logger: rt2.logger });
    cleanups.push(stop2);
    const published: string[] = [];
    rt2.bus.subscribe(rt2.subjects.allExec, (m) => void published.push(m.headers[HEADER.messageId]!));
    const finished = whenFinished(rt2, 'held');

    expect(await rt2.recover()).toEqual({ sessions: 1, commands: 1 });
    expect((await finished).type).toBe('SessionCompleted');
    expect(runs.get(held.dispatchId)).toBe(1);
    expect([...runs.values()]).toEqual([1, 1]);
    // The re-issued command went out once, not once from the outbox and again from state.
    expect(published.filter((id) => id === held.dispatchId)).toHaveLength(1);
    const state = toPlannerState(await rt2.repository.load('held'));
    expect(state.tasks.map((t) => t.status)).toEqual(['Completed', 'Completed']);
    expect(state.tasks[0]!.result).toBe('ran: Fetch the data');
    expect(toPlannerState(await rt2.repository.load('done')).status).toBe('completed');
  });

  it('after a crash that lost a report, the FileInbox answers the redelivery: the task is not run again', async () => {
    const dir = await tempDir();
    const inboxPath = join(await tempDir(), 'executor-inbox.jsonl');
    const rt1 = await createEmbeddedRuntime({ dataDir: dir, fsync: false });
    // Executor 1 records its report durably, then the report is lost on the way (the crash).
    const reportLost = deferred();
    const lossyBus: Bus = {
      subscribe: (pattern, h) => rt1.bus.subscribe(pattern, h),
      publish: async (subject, data, headers) => {
        if (subject.startsWith('jetplan.in.')) return reportLost.resolve();
        return rt1.bus.publish(subject, data, headers);
      },
    };
    const first = counting(demoHandler);
    const stop1 = startBusExecutor({ bus: lossyBus, subjects: rt1.subjects, handler: first.handler, inbox: await FileInbox.open<ExecutorReport>(inboxPath), logger: rt1.logger });
    await rt1.planner.handle('s1', { type: 'SubmitInput', text: '- Fetch the data\n- Summarise the results' });
    await reportLost.promise;
    await vi.waitFor(async () => expect(await rt1.store.pendingCommands()).toEqual([]));
    await stop1();
    await rt1.close();

    const rt2 = await createEmbeddedRuntime({ dataDir: dir, fsync: false });
    cleanups.push(() => rt2.close());
    const second = counting(demoHandler);
    const stop2 = startBusExecutor({ bus: rt2.bus, subjects: rt2.subjects, handler: second.handler, inbox: await FileInbox.open<ExecutorReport>(inboxPath), logger: rt2.logger });
    cleanups.push(stop2);
    const finished = whenFinished(rt2, 's1');
    // Nothing is pending in the outbox (it was delivered), but the task is still Running.
    expect(await rt2.recover()).toEqual({ sessions: 1, commands: 0 });
    expect((await finished).type).toBe('SessionCompleted');
    const [firstDispatch] = [...first.runs.keys()];
    expect(first.runs.get(firstDispatch!)).toBe(1);
    expect(second.runs.has(firstDispatch!)).toBe(false); // answered from the inbox
    expect(second.runs.size).toBe(1); // only the second task ran in the new runtime
  });

  it('recover loads only the sessions that have not ended (their latest event says so)', async () => {
    const dir = await tempDir();
    const rt1 = await createEmbeddedRuntime({ dataDir: dir, fsync: false });
    const stop1 = startBusExecutor({ bus: rt1.bus, subjects: rt1.subjects, handler: demoHandler, inbox: new MemoryInbox(), logger: rt1.logger });
    const done = whenFinished(rt1, 'done');
    await rt1.planner.handle('done', { type: 'SubmitInput', text: '- Summarise the results' });
    expect((await done).type).toBe('SessionCompleted');
    await rt1.planner.handle('cancelled', { type: 'SubmitInput', text: '- Which format do you want?' });
    await rt1.planner.handle('cancelled', { type: 'CancelSession', reason: 'not needed' });
    await rt1.planner.handle('open', { type: 'SubmitInput', text: '- Which format do you want?' });
    await stop1();
    await rt1.close();

    const rt2 = await createEmbeddedRuntime({ dataDir: dir, fsync: false });
    cleanups.push(() => rt2.close());
    const load = vi.spyOn(rt2.repository, 'load');
    expect((await rt2.recover()).sessions).toBe(1);
    // `done` has nothing pending: only a recovery folding every session would load it. (The other
    // two are loaded by the relay too, for their questions still in the outbox.)
    expect(load.mock.calls.map(([id]) => id)).not.toContain('done');
    expect(load.mock.calls.map(([id]) => id)).toContain('open');
  });

  it('recover re-arms a retry that was waiting when the runtime stopped', async () => {
    const dir = await tempDir();
    let now = 1_000;
    const rt1 = await createEmbeddedRuntime({ dataDir: dir, fsync: false, clock: () => now });
    const stop1 = startBusExecutor({ bus: rt1.bus, subjects: rt1.subjects, handler: demoHandler, inbox: new MemoryInbox(), logger: rt1.logger });
    const failed = deferred();
    rt1.planner.onCommit((c) => {
      if (c.events.some((e) => e.type === 'TaskRetryScheduled')) failed.resolve();
    });
    // A long backoff: the frozen clock never reaches it in the first runtime.
    await rt1.planner.handle('s1', { type: 'SubmitInput', text: '- Summarise the flaky results', config: { backoff: { baseMs: 60_000, factor: 2, maxMs: 60_000 } } });
    await failed.promise;
    await stop1();
    await rt1.close();

    now = 61_000; // the retry is due by the time the new runtime starts
    const rt2 = await createEmbeddedRuntime({ dataDir: dir, fsync: false, clock: () => now });
    cleanups.push(() => rt2.close());
    const stop2 = startBusExecutor({ bus: rt2.bus, subjects: rt2.subjects, handler: demoHandler, inbox: new MemoryInbox(), logger: rt2.logger });
    cleanups.push(stop2);
    const finished = whenFinished(rt2, 's1');
    expect(await rt2.recover()).toEqual({ sessions: 1, commands: 0 });
    expect((await finished).type).toBe('SessionCompleted');
    const { events } = await rt2.store.readStream('s1');
    expect(events.filter((e) => e.type === 'TaskDispatched')).toHaveLength(2);
  });
});
