/**
 * The stale-command guard: a new executor fleet (new durable prefix, so its consumers read the
 * stream from the start, and a new inbox bucket, so it knows no earlier report) must run an old
 * command only if its session, rebuilt from its log, still waits on exactly that dispatch: not
 * the commands of sessions that ended, nor those an open session already had reported or
 * superseded by a later attempt. A fresh command costs a read of its session's latest event,
 * which decides alone when it is the command's own TaskDispatched, a later one or an end (else the
 * log is read), exactly as a rebuild of the log would; a session with no events, or a read that
 * fails, runs the command.
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { executorNames } from '../../src/protocol/deploymentNames.js';
import pino from 'pino';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { decide, type PlannerInput } from '../../src/machines/decide.js';
import { dispatchIdFor, outstanding } from '../../src/machines/sessionQueries.js';
import { SessionRepository } from '../../src/actors/sessionRepository.js';
import { initialSessionState, type SessionState } from '../../src/machines/sessionState.js';
import { createClient } from '../../src/nats/client.js';
import { createExecutor, type Executor, type ExecutorOptions } from '../../src/nats/executor.js';
import { DEFAULT_STALE_AFTER_MS, StaleCheck, staleVerdict } from '../../src/nats/executorStale.js';
import { silentLogger } from '../../src/observability/logger.js';
import { ensureStream, JetStreamEventStore } from '../../src/persistence/jetstream/index.js';
import type { ExecuteTask } from '../../src/protocol/commands.js';
import type { DomainEvent } from '../../src/protocol/events.js';
import type { TaskHandler } from '../../src/executors/report.js';
import { defaultDecideDeps } from '../../src/runtime/embeddedRuntime.js';
import { startPlannerService } from '../../src/service/plannerService.js';
import { uniqueName } from '../support/natsServer.js';
import { natsTestEnv } from '../support/natsTestEnv.js';
import { executeTask } from '../support/executeTask.js';
import { aborted, latch, until } from '../support/waiting.js';

const env = natsTestEnv();
const conn = env.conn;

/** A handler that completes every task and records the tasks it was given. */
function counting() {
  const calls: ExecuteTask[] = [];
  const handler: TaskHandler = async (t) => {
    calls.push(t);
    return { type: 'completed', output: `done: ${t.description}` };
  };
  return { calls, handler };
}

/** A log line (parsed) of a pino logger at info. */
interface LogLine {
  level: number;
  msg: string;
  sessionId?: string;
  dispatchId?: string;
  reason?: string;
  waitingOn?: string | null;
}

function capturedLogger() {
  const lines: LogLine[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { lines, logger };
}

const SKIPPED = 'stale command not awaited by its session; acked without running it';
const UNREADABLE = 'could not read the session of a stale command; running it';
const FRESH_SKIPPED = 'command no longer awaited by its session; acked without running it';
const FRESH_UNREADABLE = 'could not read the session of a command; running it';

type Skip = [dispatchId: string | undefined, reason: string | undefined, waitingOn: string | null];
const byDispatch = (rows: Skip[]): Skip[] => [...rows].sort((x, y) => String(x[0]).localeCompare(String(y[0])));

/** What the skip log lines (at info) say, by dispatch id. */
const skips = (lines: LogLine[]): Skip[] =>
  byDispatch(
    lines
      .filter((l) => l.msg === SKIPPED)
      .map((l): Skip => {
        expect(l.level).toBe(30);
        return [l.dispatchId, l.reason, l.waitingOn ?? null];
      }),
  );

describe('a new executor fleet and the commands of earlier sessions', () => {
  it('skips the commands of a completed session and those an open session was already reported on; runs its outstanding one', async () => {
    const streamName = uniqueName('JPST');
    const subjectPrefix = uniqueName('jpst');
    const iso = { streamName, subjectPrefix };
    const service = await startPlannerService({ nc: await conn(), ...iso, logger: silentLogger, leaseBucket: uniqueName('lease') });
    env.track(service);
    await service.whenLeader;
    const client = createClient(await conn(), iso);
    env.track(client, 'last');
    const store = await JetStreamEventStore.create(await conn(), { ...iso, ensureStream: false });
    env.track(store, 'last');
    const events = async (sessionId: string): Promise<DomainEvent[]> => (await store.readStream(sessionId)).events;
    const waitFor = async (sessionId: string, done: (events: DomainEvent[]) => boolean, what: string): Promise<DomainEvent[]> => {
      let seen: DomainEvent[] = [];
      await until(async () => done((seen = await events(sessionId))), () => `${what} in ${sessionId}: ${seen.map((e) => e.type).join(',')}`);
      return seen;
    };
    const dispatches = (log: DomainEvent[]): string[] => log.flatMap((e) => (e.type === 'TaskDispatched' ? [e.data.dispatchId] : []));
    const start = async (handler: TaskHandler, extra: Partial<ExecutorOptions>): Promise<Executor> => {
      const ex = await createExecutor({ nc: await conn(), handler, kinds: ['ToolCall', 'Processing'], ...iso, ...extra });
      env.track(ex);
      return ex;
    };

    // Fleet A takes ToolCall tasks only. It runs a whole session of them...
    const a = counting();
    const fleetA = await start(a.handler, { kinds: ['ToolCall'], durablePrefix: 'fleet-a', inboxBucket: uniqueName('inbox_a') });
    const { sessionId: done } = await client.submit('Fetch https://example.com/a.csv. Fetch https://example.com/b.csv. Run `wc -l a.csv b.csv`.');
    const doneEvents = await waitFor(done, (log) => log.some((e) => e.type === 'SessionCompleted'), 'SessionCompleted');
    const doneDispatches = dispatches(doneEvents);
    expect(doneDispatches).toHaveLength(3);
    // ...and the first task of a session that goes on with a Processing task, which no one takes yet.
    const { sessionId: open } = await client.submit('Fetch https://example.com/a.csv. Summarise the results. Write the report.');
    const openEvents = await waitFor(open, (log) => dispatches(log).length === 2, 'a second TaskDispatched');
    const [reported, waiting] = dispatches(openEvents) as [string, string];
    expect(openEvents.filter((e) => e.type === 'TaskCompleted').map((e) => e.type === 'TaskCompleted' && e.data.dispatchId)).toEqual([reported]);
    expect(a.calls.map((t) => t.dispatchId)).toEqual([...doneDispatches, reported]);
    await fleetA.stop();

    // Fleet B: a new durable prefix (its consumers start at the beginning of the stream) and a new
    // inbox (no record of A's reports). Every command is checked: threshold 0. Its Processing
    // handler holds the open session at `waiting` until the ToolCall commands are all settled, so
    // that `reported` is checked while the session waits on `waiting`.
    const b = counting();
    const toolCallsSettled = latch();
    const handler: TaskHandler = async (task, tools) => {
      if (task.kind === 'Processing') await Promise.race([toolCallsSettled.promise, aborted(tools.signal)]);
      return b.handler(task, tools);
    };
    const { lines, logger } = capturedLogger();
    const fleetB = await start(handler, { durablePrefix: 'fleet-b', inboxBucket: uniqueName('inbox_b'), staleAfterMs: 0, logger });
    const jsm = await jetstreamManager(await conn());
    const settled = (kind: string) =>
      until(async () => {
        const info = await jsm.consumers.info(streamName, `fleet-b-${kind}`);
        return info.num_pending === 0 && info.num_ack_pending === 0;
      }, `fleet-b-${kind} to ack everything`);
    try {
      await settled('toolcall');
    } finally {
      toolCallsSettled.release();
    }
    const openFinal = await waitFor(open, (log) => log.some((e) => e.type === 'SessionCompleted'), 'SessionCompleted');

    // B ran the open session's outstanding dispatch and what followed it, nothing else.
    expect(b.calls.map((t) => t.dispatchId)).toEqual(dispatches(openFinal).slice(1));
    expect(b.calls[0]?.dispatchId).toBe(waiting);
    expect(fleetB.executed).toBe(b.calls.length);
    expect(fleetB.replayed).toBe(0);
    expect(fleetB.skipped).toBe(doneDispatches.length + 1);
    // Nothing was reported again: the ended session's log is as it was, the open one ignored no report.
    expect((await events(done)).length).toBe(doneEvents.length);
    expect(openFinal.filter((e) => e.type === 'ReportIgnored')).toEqual([]);
    // Every command of both sessions was acked by B's consumers.
    for (const kind of ['toolcall', 'processing']) await settled(kind);
    expect(skips(lines)).toEqual(byDispatch([...doneDispatches.map((d): Skip => [d, 'completed', null]), [reported, 'superseded', waiting]]));
  });
});

describe('the stale-command guard', () => {
  /**
   * A stream whose session logs are made by the real decider and appended as the planner does, and
   * whose commands are published by hand; no planner runs, so the logs stay as written.
   */
  async function world() {
    const nc = await conn();
    const streamName = uniqueName('JPSG');
    const subjectPrefix = uniqueName('jpsg');
    await ensureStream(nc, { streamName, subjectPrefix });
    const store = await JetStreamEventStore.create(nc, { streamName, subjectPrefix, ensureStream: false });
    env.track(store, 'last');
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    const deps = defaultDecideDeps();

    /** A session driven through decide (`life` tells apart its message ids after a purge); every ExecuteTask it emitted is kept, in order. */
    const session = (sessionId: string, life = '') => {
      let state: SessionState = initialSessionState(sessionId);
      let n = 0;
      const commands: ExecuteTask[] = [];
      return {
        sessionId,
        commands,
        get state() {
          return state;
        },
        async apply(input: PlannerInput, now = Date.now()): Promise<void> {
          const d = decide(state, input, { messageId: `${sessionId}${life}-m${++n}`, now }, deps);
          await store.appendToStream(sessionId, d.events, { expectedVersion: state.version });
          state = d.state;
          for (const c of d.commands) if (c.type === 'ExecuteTask') commands.push(c);
        },
        /** The ExecuteTask the session waits on now. */
        running(): ExecuteTask {
          const { command } = outstanding(state);
          if (command?.type !== 'ExecuteTask') throw new Error(`${sessionId} waits on no dispatch`);
          return command;
        },
      };
    };
    const publish = (task: ExecuteTask) => {
      const kind = task.kind === 'ToolCall' ? 'toolcall' : 'processing';
      return js.publish(`${subjectPrefix}.exec.${kind}.${task.sessionId}`, JSON.stringify(task), { msgID: task.dispatchId });
    };
    const start = async (handler: TaskHandler, extra: Partial<ExecutorOptions> = {}): Promise<Executor> => {
      const iso = { streamName, subjectPrefix, inboxBucket: uniqueName('inbox') };
      const ex = await createExecutor({ nc, kinds: ['ToolCall', 'Processing'], handler, ...iso, ...extra });
      env.track(ex);
      return ex;
    };
    const drained = () =>
      until(async () => {
        for (const kind of ['toolcall', 'processing']) {
          const info = await jsm.consumers.info(streamName, `${executorNames(streamName, subjectPrefix).durablePrefix}-${kind}`);
          if (info.num_pending > 0 || info.num_ack_pending > 0) return false;
        }
        return true;
      }, 'every command to be acked');
    /** The dispatch ids of the reports published into the session. */
    const reportsIn = async (sessionId: string): Promise<string[]> => {
      const info = await jsm.streams.info(streamName, { subjects_filter: `${subjectPrefix}.in.${sessionId}` });
      const count = Object.values(info.state.subjects ?? {}).reduce((n, c) => n + c, 0);
      if (count === 0) return [];
      expect(count).toBe(1);
      const last = await jsm.streams.getMessage(streamName, { last_by_subj: `${subjectPrefix}.in.${sessionId}` });
      return [(last!.json() as { dispatchId: string }).dispatchId];
    };
    const corrupt = (sessionId: string) => js.publish(`${subjectPrefix}.ev.${sessionId}`, 'not an event');
    /** Removes the session's log (as a purge, a restore or a lost unsynced tail would). */
    const purge = (sessionId: string) => jsm.streams.purge(streamName, { filter: `${subjectPrefix}.ev.${sessionId}` });
    return { streamName, subjectPrefix, store, session, publish, start, drained, reportsIn, corrupt, purge };
  }

  const ONE = 'Fetch https://example.com/a.csv.';
  const TWO = 'Fetch https://example.com/a.csv. Summarise the results.';

  it('runs an old command only while its session waits on exactly that dispatch, and on a session without events or a failed read', async () => {
    const w = await world();
    const complete = (t: ExecuteTask): PlannerInput => ({ type: 'TaskCompleted', taskId: t.taskId, dispatchId: t.dispatchId, output: 'ok' });
    const fail =
      (retryable: boolean) =>
      (t: ExecuteTask): PlannerInput => ({ type: 'TaskFailed', taskId: t.taskId, dispatchId: t.dispatchId, error: 'HTTP 503', retryable });
    /** Submits one task and reports on its first dispatch. */
    const submitAndReport = async (s: ReturnType<typeof w.session>, report: (t: ExecuteTask) => PlannerInput) => {
      await s.apply({ type: 'SubmitInput', text: ONE });
      await s.apply(report(s.running()));
    };

    // Sessions that ended: every command of them is skipped.
    const ended = {
      completed: w.session('completed'),
      failed: w.session('failed'),
      cancelled: w.session('cancelled'),
      lateInput: w.session('lateInput'),
    };
    await submitAndReport(ended.completed, complete);
    await submitAndReport(ended.failed, fail(false));
    await ended.cancelled.apply({ type: 'SubmitInput', text: ONE });
    await ended.cancelled.apply({ type: 'CancelSession', reason: 'user' });
    // Completed, then an input rejected: the log's last event is an InputRejected.
    await submitAndReport(ended.lateInput, complete);
    await ended.lateInput.apply({ type: 'CancelSession' });
    expect(ended.lateInput.state.version).toBe(ended.completed.state.version + 1);

    // Open sessions. `movedOn`: task 1 reported and completed, task 2 dispatched.
    const movedOn = w.session('movedOn');
    await movedOn.apply({ type: 'SubmitInput', text: TWO });
    await movedOn.apply(complete(movedOn.running()));
    // `retried`: attempt 1 failed (retryable), attempt 2 dispatched when its retry was due.
    const retried = w.session('retried');
    await retried.apply({ type: 'SubmitInput', text: ONE });
    await retried.apply(fail(true)(retried.running()));
    const due = outstanding(retried.state).retry!;
    await retried.apply({ type: 'RetryDue', taskId: due.taskId, attempt: due.attempt }, due.dueAt);
    // `backoff`: attempt 1 failed (retryable), the retry not yet due: no dispatch is awaited.
    const backoff = w.session('backoff');
    await backoff.apply({ type: 'SubmitInput', text: ONE });
    await backoff.apply(fail(true)(backoff.running()));
    expect(outstanding(backoff.state).retry).toBeDefined();

    await w.corrupt('corrupt');
    const unlogged = executeTask({ sessionId: 'unlogged', taskId: 't1', dispatchId: 'unlogged.t1.1' });
    const unreadable = executeTask({ sessionId: 'corrupt', taskId: 't1', dispatchId: 'corrupt.t1.1' });

    const all = [...Object.values(ended), movedOn, retried, backoff];
    for (const s of all) for (const c of s.commands) await w.publish(c);
    await w.publish(unlogged);
    await w.publish(unreadable);

    const [superseded1, current1] = movedOn.commands.map((c) => c.dispatchId) as [string, string];
    const [superseded2, current2] = retried.commands.map((c) => c.dispatchId) as [string, string];
    expect(current1).toBe(movedOn.running().dispatchId);
    expect(current2).toBe(retried.running().dispatchId);
    expect(retried.commands.map((c) => c.attempt)).toEqual([1, 2]);

    const { calls, handler } = counting();
    const { lines, logger } = capturedLogger();
    const ex = await w.start(handler, { staleAfterMs: 0, logger });
    await w.drained();
    const published = all.reduce((n, s) => n + s.commands.length, 2);
    const settled = () => `every command to be run or skipped (executed ${ex.executed}, skipped ${ex.skipped})`;
    await until(() => ex.executed + ex.skipped === published, settled);
    const runs = [current1, current2, unlogged.dispatchId, unreadable.dispatchId];

    expect(calls.map((t) => t.dispatchId).sort()).toEqual([...runs].sort());
    const expectedSkips: Skip[] = [
      ...Object.entries(ended).map(([reason, s]): Skip => [s.commands[0]!.dispatchId, reason === 'lateInput' ? 'completed' : reason, null]),
      [superseded1, 'superseded', current1],
      [superseded2, 'superseded', current2],
      [backoff.commands[0]!.dispatchId, 'superseded', null],
    ];
    expect(ex.skipped).toBe(expectedSkips.length);
    expect(skips(lines)).toEqual(byDispatch(expectedSkips));
    // A skipped command is not reported; the ones run are.
    for (const s of [...Object.values(ended), backoff]) expect(await w.reportsIn(s.sessionId)).toEqual([]);
    expect(await w.reportsIn('movedOn')).toEqual([current1]);
    expect(await w.reportsIn('retried')).toEqual([current2]);
    expect(await w.reportsIn('unlogged')).toEqual([unlogged.dispatchId]);
    expect(await w.reportsIn('corrupt')).toEqual([unreadable.dispatchId]);
    const warned = lines.filter((l) => l.msg === UNREADABLE);
    expect(warned.map((l) => [l.level, l.sessionId])).toEqual([[40, 'corrupt']]);
    await ex.stop();
  });

  it('judges a stale command again once its session is followed: a cancel just after the first read runs nothing', async () => {
    const w = await world();
    const s = w.session('late-cancel');
    await s.apply({ type: 'SubmitInput', text: ONE });
    await w.publish(s.running());
    const notAwaited = StaleCheck.prototype.notAwaited;
    // The session is cancelled right after the stale check read it, before the run follows it.
    const spy = vi.spyOn(StaleCheck.prototype, 'notAwaited').mockImplementation(async function (this: StaleCheck, ...args) {
      const skip = await notAwaited.apply(this, args);
      if (!skip) await s.apply({ type: 'CancelSession', reason: 'user' });
      return skip;
    });
    onTestFinished(() => spy.mockRestore());
    const { calls, handler } = counting();
    const ex = await w.start(handler, { staleAfterMs: 0 });
    await until(() => ex.skipped === 1, 'the command to be skipped');
    expect(calls).toEqual([]);
    expect(await w.reportsIn('late-cancel')).toEqual([]);
    await ex.stop();
  });

  it('judges by the log as it is now: a session log replaced under the same id runs the dispatch it waits on', async () => {
    const w = await world();
    const complete = (t: ExecuteTask): PlannerInput => ({ type: 'TaskCompleted', taskId: t.taskId, dispatchId: t.dispatchId, output: 'ok' });
    const { calls, handler } = counting();
    const ex = await w.start(handler, { staleAfterMs: 0 });
    // First life of S: one task, completed; its old command is checked and skipped.
    const first = w.session('S');
    await first.apply({ type: 'SubmitInput', text: ONE });
    const old = first.running();
    await first.apply(complete(old));
    await w.publish(old);
    await until(() => ex.skipped === 1, 'the old command to be skipped');
    // The log is replaced by a second life of S with as many events, now waiting on its t2.
    await w.purge('S');
    const second = w.session('S', '-2'); // other event ids: the first life's are in the dedup window
    await second.apply({ type: 'SubmitInput', text: TWO });
    await second.apply(complete(second.running()));
    expect(second.state.version).toBe(first.state.version);
    const waiting = second.running();
    await w.publish(waiting);
    await until(() => ex.executed === 1, 'the command the new log waits on to run');
    expect(calls.map((t) => t.dispatchId)).toEqual([waiting.dispatchId]);
  });

  it('with the default threshold (30 s), reads a session log for a command stored before its consumer existed, a fresh one\'s latest event', async () => {
    const w = await world();
    const ended = async (sessionId: string) => {
      const s = w.session(sessionId);
      await s.apply({ type: 'SubmitInput', text: TWO });
      const first = s.running();
      await s.apply({ type: 'TaskCompleted', taskId: first.taskId, dispatchId: first.dispatchId, output: 'ok' });
      await s.apply({ type: 'CancelSession' });
      return first;
    };
    // A command stored before the executor's consumer was made (a new fleet reading the stream
    // from its start), however recent: its session is read, and it has ended.
    const before = await ended('before');
    await w.publish(before);
    const { calls, handler } = counting();
    const { lines, logger } = capturedLogger();
    const ex = await w.start(handler, { logger });
    await w.drained();
    expect(calls).toEqual([]);
    expect(ex.skipped).toBe(1);
    // A fresh command delivered for the first time to an existing consumer: its session's latest
    // event is read. Its own TaskDispatched: run. An end: skipped (here `after`, cancelled while
    // the command waited for a free executor). Anything else that does not settle it: the log is
    // read, and the command runs only if the session still waits on it (here `grown`, which took
    // more input since, still waiting).
    const after = await ended('after');
    await w.publish(after);
    const open = w.session('open');
    await open.apply({ type: 'SubmitInput', text: TWO });
    await w.publish(open.running());
    const grown = w.session('grown');
    await grown.apply({ type: 'SubmitInput', text: ONE });
    const waited = grown.running();
    await grown.apply({ type: 'SubmitInput', text: 'Summarise the results.' });
    await w.publish(waited);
    await w.drained();
    expect(calls.map((t) => t.dispatchId).sort()).toEqual([open.running().dispatchId, waited.dispatchId].sort());
    expect(ex.skipped).toBe(2);
    expect(lines.filter((l) => l.msg === SKIPPED).map((l) => l.sessionId)).toEqual(['before']);
    expect(lines.filter((l) => l.msg === FRESH_SKIPPED).map((l) => [l.sessionId, l.reason])).toEqual([['after', 'cancelled']]);
    expect(lines.filter((l) => l.msg === UNREADABLE || l.msg === FRESH_UNREADABLE)).toEqual([]);
  });

  /**
   * The fresh check on its own: sessions padded with rejected inputs (so that a read of a whole
   * log shows in the cost), and `judge`, which runs `movedOn` through a StaleCheck on a connection
   * of its own and returns its verdict, the verdict of the session rebuilt from its log, and what
   * `movedOn` cost: the events its store handed out and the messages its connection received.
   */
  async function freshCheck() {
    const w = await world();
    const PADDING = 12;
    /** A session whose log `script` writes after the padding; the command checked is the one `script` returns. */
    const build = async (sessionId: string, script: (s: WorldSession) => Promise<ExecuteTask>) => {
      const s = w.session(sessionId);
      for (let i = 0; i < PADDING; i++) await s.apply({ type: 'InvalidInput', reason: `padding ${i}` });
      const task = await script(s);
      return { sessionId, task, events: s.state.version, waitingOn: () => s.running().dispatchId };
    };
    let eventsRead = 0;
    const readStreamEach = JetStreamEventStore.prototype.readStreamEach;
    // Counts the events the check's stores hand out; the world's store (the rebuild oracle's) is not counted.
    const spy = vi.spyOn(JetStreamEventStore.prototype, 'readStreamEach').mockImplementation(function (this: JetStreamEventStore, id, options, onEvent) {
      const counted = this === w.store ? onEvent : (e: DomainEvent) => void (eventsRead++, onEvent(e));
      return readStreamEach.call(this, id, options, counted);
    });
    onTestFinished(() => spy.mockRestore());
    const oracle = new SessionRepository({ store: w.store });
    const judge = async (task: ExecuteTask) => {
      const nc = await conn();
      const { lines, logger } = capturedLogger();
      const check = new StaleCheck({ nc, streamName: w.streamName, subjectPrefix: w.subjectPrefix, staleAfterMs: DEFAULT_STALE_AFTER_MS, ackWaitMs: 30_000, logger });
      try {
        await check.movedOn(executeTask({ sessionId: 'warm-up', dispatchId: 'warm-up.t1.1' }), {}); // opens the check's store
        eventsRead = 0;
        const before = nc.stats().inMsgs;
        const skipped = await check.movedOn(task, { sessionId: task.sessionId, dispatchId: task.dispatchId });
        const cost = { events: eventsRead, messages: nc.stats().inMsgs - before };
        expect(lines.filter((l) => l.msg === FRESH_UNREADABLE)).toEqual([]);
        const logged = lines.filter((l) => l.msg === FRESH_SKIPPED).map((l): Skip => [l.dispatchId, l.reason, l.waitingOn ?? null]);
        const rebuilt = (await staleVerdict(oracle, task)) as { action: string; reason: string; waitingOn?: string | null };
        const expected = rebuilt.action === 'skip' ? [[task.dispatchId, rebuilt.reason, rebuilt.waitingOn ?? null]] : [];
        expect(logged, `${task.sessionId}: movedOn's verdict, and the rebuild's`).toEqual(expected);
        return { verdict: skipped ? logged[0]!.slice(1) : ['run'], cost };
      } finally {
        await check.close();
        await nc.close();
      }
    };
    return { build, judge };
  }

  type WorldSession = ReturnType<Awaited<ReturnType<typeof world>>['session']>;

  const completeReport = (t: ExecuteTask): PlannerInput => ({ type: 'TaskCompleted', taskId: t.taskId, dispatchId: t.dispatchId, output: 'ok' });
  const failReport = (t: ExecuteTask, retryable: boolean): PlannerInput => ({ type: 'TaskFailed', taskId: t.taskId, dispatchId: t.dispatchId, error: 'HTTP 503', retryable });
  /** A session script: submits `text`, then does `next`; the command checked is the dispatch the submission made. */
  const afterSubmit =
    (text: string, next: (s: WorldSession, t: ExecuteTask) => Promise<void> = async () => undefined) =>
    async (s: WorldSession): Promise<ExecuteTask> => {
      await s.apply({ type: 'SubmitInput', text });
      const t = s.running();
      await next(s, t);
      return t;
    };

  it('decides a fresh command from one message get of its session\'s latest event when that is the dispatch, a later one or an end', async () => {
    const { build, judge } = await freshCheck();
    let retriedRun: string | null = null;
    const sessions = [
      await build('own', afterSubmit(TWO)),
      await build('cancelled', afterSubmit(TWO, (s) => s.apply({ type: 'CancelSession', reason: 'user' }))),
      await build('completed', afterSubmit(ONE, (s, t) => s.apply(completeReport(t)))),
      await build('failed', afterSubmit(ONE, (s, t) => s.apply(failReport(t, false)))),
      await build('nextTask', afterSubmit(TWO, (s, t) => s.apply(completeReport(t)))),
      await build('retried', afterSubmit(ONE, async (s, t) => {
        await s.apply(failReport(t, true));
        const due = outstanding(s.state).retry!;
        await s.apply({ type: 'RetryDue', taskId: due.taskId, attempt: due.attempt }, due.dueAt);
        retriedRun = s.state.snapshot.context.runId;
      })),
      { sessionId: 'unlogged', task: executeTask({ sessionId: 'unlogged', dispatchId: 'unlogged.t1.1' }), events: 0, waitingOn: () => null },
    ];
    const verdicts: Record<string, unknown[]> = {};
    for (const { sessionId, task, events } of sessions) {
      const { verdict, cost } = await judge(task);
      verdicts[sessionId] = verdict;
      // The latest event alone (none for a session without events), with one message get.
      expect(cost, `cost for ${sessionId}, a log of ${events} events`).toEqual({ events: Math.min(events, 1), messages: 1 });
    }
    expect(verdicts).toEqual({
      own: ['run'],
      cancelled: ['cancelled', null],
      completed: ['completed', null],
      failed: ['failed', null],
      nextTask: ['superseded', sessions[4]!.waitingOn()],
      retried: ['superseded', sessions[5]!.waitingOn()],
      unlogged: ['run'],
    });
    expect(sessions[5]!.waitingOn()).toBe(dispatchIdFor('retried', sessions[5]!.task.taskId, 2, retriedRun));
  });

  it('reads the log of a fresh command\'s session when its latest event does not settle the verdict', async () => {
    const { build, judge } = await freshCheck();
    const sessions = [
      // TasksPlanned, the session still running the dispatch.
      await build('grown', afterSubmit(ONE, (s) => s.apply({ type: 'SubmitInput', text: 'Summarise the results.' }))),
      // InputRejected, the session completed.
      await build('rejectedAfterEnd', afterSubmit(ONE, async (s, t) => {
        await s.apply(completeReport(t));
        await s.apply({ type: 'CancelSession' });
      })),
      // TaskRetryScheduled, the retry not due: no dispatch awaited.
      await build('backoff', afterSubmit(ONE, (s, t) => s.apply(failReport(t, true)))),
      // ClarificationRequested: a question awaited.
      await build('asked', afterSubmit(ONE, (s, t) => s.apply({ type: 'NeedsClarification', taskId: t.taskId, dispatchId: t.dispatchId, question: 'Which bucket?' }))),
    ];
    const verdicts: Record<string, unknown[]> = {};
    for (const { sessionId, task, events } of sessions) {
      const { verdict, cost } = await judge(task);
      verdicts[sessionId] = verdict;
      // The latest event, then the whole log.
      expect(cost.events, `events read for ${sessionId}`).toBe(1 + events);
      expect(cost.messages, `messages for ${sessionId}`).toBeGreaterThan(events);
    }
    expect(verdicts).toEqual({
      grown: ['run'],
      rejectedAfterEnd: ['completed', null],
      backoff: ['superseded', null],
      asked: ['superseded', null],
    });
  });

  it('refuses a negative threshold', async () => {
    const w = await world();
    await expect(w.start(counting().handler, { staleAfterMs: -1 })).rejects.toThrow('staleAfterMs must be an integer of 0 or more');
  });
});
