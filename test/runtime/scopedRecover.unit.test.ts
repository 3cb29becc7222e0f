import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Bus } from '../../src/actors/bus.js';
import { startBusExecutor } from '../../src/executors/busExecutor.js';
import { demoHandler } from '../../src/executors/demoExecutor.js';
import type { ExecutorReport, TaskHandler } from '../../src/executors/report.js';
import { toPlannerState } from '../../src/machines/sessionQueries.js';
import { MemoryInbox } from '../../src/persistence/inbox.js';
import { createEmbeddedRuntime, type EmbeddedRuntime } from '../../src/runtime/embeddedRuntime.js';
import { FakeTimers } from '../support/fakeTimers.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

function whenFinished(rt: EmbeddedRuntime, sessionId: string): Promise<string> {
  return new Promise((resolve) => {
    rt.planner.onCommit((c) => {
      const last = c.sessionId === sessionId && c.events.find((e) => e.type === 'SessionCompleted' || e.type === 'SessionFailed');
      if (last) resolve(last.type);
    });
  });
}

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((res) => (resolve = res));
  return { promise, resolve };
}

const taskStatus = async (rt: EmbeddedRuntime, id: string) => toPlannerState(await rt.repository.load(id)).tasks[0]!.status;

/**
 * Leaves three sessions open in `dir`, each in one of the ways recover re-arms: "a" with its
 * command still in the outbox (no executor took ToolCalls), "b" waiting for a retry (its timer
 * never fires), "c" with a task Running whose report was lost (its command was delivered).
 */
async function leaveThreeOpen(dir: string, inbox: MemoryInbox<ExecutorReport>): Promise<void> {
  const rt = await createEmbeddedRuntime({ dataDir: dir, fsync: false, timers: new FakeTimers() });
  const lost = deferred();
  const lossy: Bus = {
    subscribe: (pattern, handler) => rt.bus.subscribe(pattern, handler),
    publish: async (subject, data, headers) => (subject === rt.subjects.input('c') ? lost.resolve() : rt.bus.publish(subject, data, headers)),
  };
  const stop = startBusExecutor({ bus: lossy, subjects: rt.subjects, handler: demoHandler, inbox, logger: rt.logger, kinds: ['Processing'] });
  const backoff = deferred();
  rt.planner.onCommit((c) => c.sessionId === 'b' && c.events.some((e) => e.type === 'TaskRetryScheduled') && backoff.resolve());
  await rt.planner.handle('a', { type: 'SubmitInput', text: '- Fetch https://example.com/a.' });
  await rt.planner.handle('b', { type: 'SubmitInput', text: '- Summarise the flaky results' });
  await rt.planner.handle('c', { type: 'SubmitInput', text: '- Summarise the notes' });
  await Promise.all([lost.promise, backoff.promise]);
  await vi.waitFor(async () => expect((await rt.store.pendingCommands()).map((p) => p.sessionId)).toEqual(['a']));
  expect(await taskStatus(rt, 'c')).toBe('Running');
  await stop();
  await rt.close();
}

describe('scoped recover', () => {
  it('recover({ sessionId }) re-arms that session only: its commands, its open task, its timer', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jetplan-scoped-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const inbox = new MemoryInbox<ExecutorReport>();
    await leaveThreeOpen(dir, inbox);

    const timers = new FakeTimers();
    const rt = await createEmbeddedRuntime({ dataDir: dir, fsync: false, timers });
    const ran: string[] = [];
    const handler: TaskHandler = (task, tools) => (ran.push(task.sessionId), demoHandler(task, tools));
    const stop = startBusExecutor({ bus: rt.bus, subjects: rt.subjects, handler, inbox, logger: rt.logger });
    cleanups.push(() => rt.close(), stop);
    const sent: string[] = [];
    rt.bus.subscribe(rt.subjects.allExec, (m) => void sent.push((m.data as { sessionId: string }).sessionId));

    // "a": only its outbox command goes out; "b" gets no timer, "c" no re-issue.
    const a = whenFinished(rt, 'a');
    expect(await rt.recover({ sessionId: 'a' })).toEqual({ sessions: 1, commands: 1 });
    expect(await a).toBe('SessionCompleted');
    await rt.planner.drain();
    expect(new Set(sent)).toEqual(new Set(['a']));
    expect(timers.pending.size).toBe(0);
    expect(await taskStatus(rt, 'c')).toBe('Running');

    // "c": its open task is issued again and answered from the executor's inbox, not run again.
    const c = whenFinished(rt, 'c');
    expect(await rt.recover({ sessionId: 'c' })).toEqual({ sessions: 1, commands: 0 });
    expect(await c).toBe('SessionCompleted');
    expect(ran).toEqual(['a']);
    expect(timers.pending.size).toBe(0);

    // The unscoped form still re-arms everything: here, "b"'s retry timer.
    expect(await rt.recover()).toEqual({ sessions: 1, commands: 0 });
    expect(timers.pending.size).toBe(1);
    expect(await rt.recover({ sessionId: 'nope' })).toEqual({ sessions: 0, commands: 0 });
  });
});
