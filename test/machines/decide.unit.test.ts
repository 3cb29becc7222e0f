import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/errors.js';
import { backoffDelay, decide, type PlannerInput } from '../../src/machines/decide.js';
import { INBOX_WINDOW, type SessionState } from '../../src/machines/sessionState.js';
import type { InputMeta } from '../../src/protocol/inputs.js';
import { currentTask, statusOf, taskView, toPlannerState } from '../../src/machines/sessionQueries.js';
import { PlannerConfig } from '../../src/protocol/domain.js';
import { bpeTokenCounter, countItemTokens } from '../../src/compaction/index.js';
import type { EventOf } from '../../src/protocol/events.js';
import {
  answer,
  cancel,
  completed,
  deps,
  dispatch,
  failed,
  fold,
  given,
  history,
  invalid,
  metaOf,
  needs,
  retryDue,
  run,
  RUN_ID,
  submit,
  T0,
  taskIds,
} from './deciderSpecification.js';

const TWO = 'Fetch the logs from https://logs.example.com/today. Summarize the flaky tests.';
const [FETCH, SUMMARIZE] = taskIds(TWO) as [string, string];
const QUESTION = 'Which region should we deploy to?';
const ASK_THEN_WORK = `${QUESTION} Deploy the app.`;
const [ASK, DEPLOY] = taskIds(ASK_THEN_WORK) as [string, string];
const defaults = PlannerConfig.parse({});

describe('decide: SubmitInput', () => {
  it('starts a new session, plans and dispatches the first task', () => {
    const when = given().when(submit(TWO));
    // The dispatch id names the session, this run of it, the task and the attempt.
    const runId = (when.decision.events[0] as EventOf<'SessionStarted'>).data.runId!;
    const first = `s1.${runId}.${FETCH}.1`;
    const d = when.then([
      { type: 'SessionStarted', data: { config: defaults, runId: RUN_ID } },
      {
        type: 'TasksPlanned',
        data: {
          input: TWO,
          tasks: [
            { id: FETCH, description: 'Fetch the logs from https://logs.example.com/today.', kind: 'ToolCall', attachments: [{ kind: 'url', url: 'https://logs.example.com/today' }] },
            { id: SUMMARIZE, description: 'Summarize the flaky tests.', kind: 'Processing', attachments: [] },
          ],
        },
      },
      { type: 'TaskDispatched', data: { taskId: FETCH, dispatchId: first, attempt: 1, kind: 'ToolCall' } },
    ]);
    expect(d.state.snapshot.context.runId).toBe(runId);
    // ExecuteTask carries the description, the attachments and the rendered context.
    expect(d.commands).toEqual([
      {
        type: 'ExecuteTask',
        sessionId: 's1',
        taskId: FETCH,
        dispatchId: first,
        attempt: 1,
        kind: 'ToolCall',
        description: 'Fetch the logs from https://logs.example.com/today.',
        attachments: [{ kind: 'url', url: 'https://logs.example.com/today' }],
        context: `${defaults.systemPrompt}\n\n${TWO}`,
      },
    ]);
  });

  it('uses the config of the first input, and the correlation id of the meta', () => {
    const config = { systemPrompt: 'Be brief.', tokenBudget: 512, maxAttempts: 5 };
    const d = given().when(submit('Summarize the flaky tests.', config), { correlationId: 'c-42' });
    d.then([
      { type: 'SessionStarted', data: { config: { ...defaults, ...config }, runId: RUN_ID } },
      { type: 'TasksPlanned' },
      { type: 'TaskDispatched' },
    ]);
  });

  it('adds tasks to an active session, ids continuing after the existing ones, without a second dispatch', () => {
    const more = 'Deploy the app. Notify the team.';
    const ids = taskIds(more, 2);
    expect(ids[0]).toMatch(/^t3-/);
    given(history(submit(TWO)))
      .when(submit(more))
      .then([{ type: 'TasksPlanned', data: { input: more, tasks: [expect.objectContaining({ id: ids[0] }), expect.objectContaining({ id: ids[1] })] } }]);
  });

  it.each([
    ['completed', [submit('Summarize the flaky tests.'), (s: SessionState) => completed(taskIds('Summarize the flaky tests.')[0]!, dispatch(taskIds('Summarize the flaky tests.')[0]!, 1, s))]],
    ['cancelled', [submit(TWO), cancel()]],
    ['failed', [submit(TWO), (s: SessionState) => failed(FETCH, dispatch(FETCH, 1, s), 'fatal', false)]],
  ] as const)('is rejected on a %s session', (status, steps) => {
    const events = history(...steps);
    given(events).when(submit('Deploy the app.')).thenRejects(`session is ${status}`);
  });

  it('rejects unusable text, starting nothing', () => {
    const d = given().when(submit('   ')).thenRejects('no plannable text');
    expect(d.events[0]!.data).toMatchObject({ inputType: 'SubmitInput', messageId: expect.any(String) });
    expect(statusOf(d.state)).toBe('idle');
    given(history(submit(TWO))).when(submit('# Only a heading')).thenRejects('no plannable text');
  });

  it('rejects an invalid config', () => {
    given()
      .when(submit(TWO, { tokenBudget: -5 }))
      .thenRejects('invalid config');
  });

  it('rejects a token budget the system prompt does not fit in (it is never compacted away)', () => {
    given()
      .when(submit(TWO, { tokenBudget: 5 }))
      .thenRejects('invalid config: tokenBudget 5 cannot hold the system prompt (9 tokens)');
    given().when(submit(TWO, { tokenBudget: 9 })).then([{ type: 'SessionStarted' }, { type: 'TasksPlanned' }, { type: 'ContextCompacted' }, { type: 'TaskDispatched' }]);
  });
});

describe('decide: dispatch', () => {
  it('runs one task at a time, in order, and completes the session when all are done', () => {
    const start = history(submit(TWO));
    const afterFirst = given(start)
      .when(completed(FETCH, dispatch(FETCH, 1, start), 'the logs'))
      .then([
        { type: 'TaskCompleted', data: { taskId: FETCH, dispatchId: dispatch(FETCH, 1, start), output: 'the logs' } },
        { type: 'TaskDispatched', data: { taskId: SUMMARIZE, dispatchId: dispatch(SUMMARIZE, 1, start), attempt: 1, kind: 'Processing' } },
      ]);
    // The next task sees the previous result in its context.
    expect(afterFirst.commands).toEqual([expect.objectContaining({ type: 'ExecuteTask', taskId: SUMMARIZE, context: expect.stringContaining('the logs') })]);
    given([...start, ...afterFirst.events])
      .when(completed(SUMMARIZE, dispatch(SUMMARIZE, 1, start)))
      .then([{ type: 'TaskCompleted' }, { type: 'SessionCompleted', data: { tasks: 2 } }]);
  });

  it('resumes a session whose last append stopped short of the dispatch, on any input', () => {
    const [started, planned] = history(submit(TWO));
    given([started!, planned!])
      .when(retryDue(FETCH, 1))
      .then([{ type: 'TaskDispatched', data: expect.objectContaining({ taskId: FETCH, attempt: 1 }) }]);
  });
});

describe('decide: clarification', () => {
  it('asks a Clarification task directly and completes it with the answer', () => {
    const d = given()
      .when(submit(ASK_THEN_WORK))
      .then([{ type: 'SessionStarted' }, { type: 'TasksPlanned' }, { type: 'ClarificationRequested', data: { taskId: ASK, question: QUESTION } }]);
    expect(d.commands).toEqual([{ type: 'RequestClarification', sessionId: 's1', taskId: ASK, question: QUESTION }]);
    const answered = given(d.events)
      .when(answer(ASK, 'eu-west-1'))
      .then([
        { type: 'ClarificationProvided', data: { taskId: ASK, answer: 'eu-west-1', question: QUESTION } },
        { type: 'TaskDispatched', data: expect.objectContaining({ taskId: DEPLOY, attempt: 1 }) },
      ]);
    expect(taskView(answered.state, ASK)).toMatchObject({ status: 'Completed', result: 'eu-west-1', answer: 'eu-west-1' });
    expect(answered.commands).toEqual([
      expect.objectContaining({ type: 'ExecuteTask', taskId: DEPLOY, context: expect.stringContaining(`Q: ${QUESTION}\nA: eu-west-1`) }),
    ]);
  });

  it('never sends a Clarification task to an executor', () => {
    const text = 'Which region? Ask the user about the budget. Is it urgent?';
    const ids = taskIds(text);
    const { events, commands } = run([submit(text), ...ids.map((id) => answer(id, 'yes'))]);
    expect(events.filter((e) => e.type === 'TaskDispatched')).toEqual([]);
    expect(events.at(-1)!.type).toBe('SessionCompleted');
    expect(commands.map((c) => c.type)).toEqual(['RequestClarification', 'RequestClarification', 'RequestClarification']);
  });

  it('relays an executor question, then re-dispatches the task with the next attempt', () => {
    const start = history(submit(TWO));
    const asked = given(start)
      .when(needs(FETCH, dispatch(FETCH, 1, start), 'Which environment?'))
      .then([{ type: 'ClarificationRequested', data: { taskId: FETCH, question: 'Which environment?', dispatchId: dispatch(FETCH, 1, start) } }]);
    expect(asked.commands).toEqual([{ type: 'RequestClarification', sessionId: 's1', taskId: FETCH, question: 'Which environment?' }]);
    const redispatched = given([...start, ...asked.events])
      .when(answer(FETCH, 'staging'))
      .then([
        { type: 'ClarificationProvided', data: { taskId: FETCH, answer: 'staging', question: 'Which environment?' } },
        { type: 'TaskDispatched', data: { taskId: FETCH, dispatchId: dispatch(FETCH, 2, start), attempt: 2, kind: 'ToolCall' } },
      ]);
    expect(redispatched.commands).toEqual([
      expect.objectContaining({ type: 'ExecuteTask', attempt: 2, context: expect.stringContaining('Q: Which environment?\nA: staging') }),
    ]);
    // The report of the first dispatch is now late.
    given([...start, ...asked.events, ...redispatched.events])
      .when(completed(FETCH, dispatch(FETCH, 1, start)))
      .then([{ type: 'ReportIgnored', data: expect.objectContaining({ taskId: FETCH, dispatchId: dispatch(FETCH, 1, start), report: 'TaskCompleted' }) }]);
  });

  it('keeps both answers when an executor asks about the same task twice, under distinct ids', () => {
    const { state, commands } = run([
      submit(TWO),
      (s) => needs(FETCH, dispatch(FETCH, 1, s), 'Which environment?'),
      answer(FETCH, 'staging'),
      (s) => needs(FETCH, dispatch(FETCH, 2, s), 'Which day?'),
      answer(FETCH, 'today'),
    ]);
    const answers = state.snapshot.context.items.filter((i) => i.slot === 'answer');
    expect(answers.map((i) => i.text)).toEqual(['Q: Which environment?\nA: staging', 'Q: Which day?\nA: today']);
    expect(answers[0]!.id).toBe(`answer-${FETCH}`);
    expect(new Set(state.snapshot.context.items.map((i) => i.id)).size).toBe(state.snapshot.context.items.length);
    expect(commands.at(-1)).toMatchObject({ type: 'ExecuteTask', attempt: 3, context: expect.stringContaining('A: staging') });
    expect(commands.at(-1)).toMatchObject({ context: expect.stringContaining('A: today') });
  });

  it('rejects an answer for a task that is not waiting', () => {
    given(history(submit(TWO))).when(answer(FETCH, 'x')).thenRejects(`task ${FETCH} is not waiting for clarification`);
    given(history(submit(TWO))).when(answer('t9-nope', 'x')).thenRejects('is not waiting for clarification');
  });
});

describe('decide: reports', () => {
  const start = history(submit(TWO));

  it('ignores a duplicate completion of the same dispatch, and nothing else happens', () => {
    const done = history(submit(TWO), (s) => completed(FETCH, dispatch(FETCH, 1, s)));
    const d = given(done)
      .when(completed(FETCH, dispatch(FETCH, 1, done)))
      .then([{ type: 'ReportIgnored', data: { taskId: FETCH, dispatchId: dispatch(FETCH, 1, done), report: 'TaskCompleted', reason: expect.stringContaining('Completed') } }]);
    expect(d.commands).toEqual([]);
    expect(d.state.snapshot.context.ignored).toBe(1);
  });

  it('ignores a late report of an earlier dispatch', () => {
    const retried = history(submit(TWO), (s) => failed(FETCH, dispatch(FETCH, 1, s)), [retryDue(FETCH, 2), { now: T0 + 1000 }]);
    expect(retried.at(-1)).toMatchObject({ type: 'TaskDispatched', data: { attempt: 2 } });
    given(retried)
      .when(failed(FETCH, dispatch(FETCH, 1, retried), 'late'))
      .then([{ type: 'ReportIgnored', data: expect.objectContaining({ report: 'TaskFailed', reason: expect.stringContaining('duplicate or late') }) }]);
  });

  it('rejects a report for an unknown task or an unknown dispatch', () => {
    given(start).when(completed('t9-unknown', 'x')).thenRejects('unknown task t9-unknown');
    given(start).when(completed(FETCH, dispatch(FETCH, 2, start))).thenRejects(`unknown dispatch ${dispatch(FETCH, 2, start)}`);
    given(start).when(completed(SUMMARIZE, dispatch(SUMMARIZE, 1, start))).thenRejects('unknown dispatch');
    // The id without the session's run id is another run's (or none), not this one's.
    given(start).when(completed(FETCH, `s1.${FETCH}.1`)).thenRejects(`unknown dispatch s1.${FETCH}.1`);
    given(start).when(needs(FETCH, 'other.session.1', 'why?')).thenRejects('unknown dispatch');
  });

  it('schedules a retry of a retryable failure with exponential backoff', () => {
    const d = given(start)
      .when(failed(FETCH, dispatch(FETCH, 1, start), 'timeout'))
      .then([
        { type: 'TaskFailed', data: { taskId: FETCH, dispatchId: dispatch(FETCH, 1, start), error: 'timeout', retryable: true, final: false } },
        { type: 'TaskRetryScheduled', data: { taskId: FETCH, attempt: 2, dueAt: T0 + 200 } },
      ]);
    expect(toPlannerState(d.state).waiting.retry).toEqual({ taskId: FETCH, dueAt: T0 + 200 });
    const early = [...start, ...d.events];
    given(early).when(retryDue(FETCH, 2), { now: T0 + 199 }).thenNothing();
    const again = given(early)
      .when(retryDue(FETCH, 2), { now: T0 + 200 })
      .then([{ type: 'TaskDispatched', data: { taskId: FETCH, dispatchId: dispatch(FETCH, 2, start), attempt: 2, kind: 'ToolCall' } }]);
    given([...early, ...again.events])
      .when(failed(FETCH, dispatch(FETCH, 2, start), 'timeout', true), { now: T0 + 300 })
      .then([{ type: 'TaskFailed' }, { type: 'TaskRetryScheduled', data: { taskId: FETCH, attempt: 3, dueAt: T0 + 300 + 400 } }]);
  });

  it('computes backoff delays: base * factor^(attempt-1), capped', () => {
    expect([1, 2, 3, 4].map((a) => backoffDelay(defaults, a))).toEqual([200, 400, 800, 1600]);
    expect(backoffDelay(defaults, 20)).toBe(30_000);
    const custom = PlannerConfig.parse({ backoff: { baseMs: 100, factor: 3, maxMs: 500 } });
    expect([1, 2, 3].map((a) => backoffDelay(custom, a))).toEqual([100, 300, 500]);
    expect(backoffDelay(PlannerConfig.parse({ backoff: { baseMs: 150, factor: 1.5, maxMs: 10_000 } }), 2)).toBe(225);
  });

  it('fails the session after maxAttempts', () => {
    const events = history(
      submit(TWO, { maxAttempts: 2 }),
      (s) => failed(FETCH, dispatch(FETCH, 1, s), 'e1'),
      [retryDue(FETCH, 2), { now: T0 + 10_000 }],
    );
    const d = given(events)
      .when(failed(FETCH, dispatch(FETCH, 2, events), 'e2'))
      .then([
        { type: 'TaskFailed', data: { taskId: FETCH, dispatchId: dispatch(FETCH, 2, events), error: 'e2', retryable: true, final: true } },
        { type: 'SessionFailed', data: { reason: `task ${FETCH} failed after 2 attempts: e2`, taskId: FETCH } },
      ]);
    expect(taskView(d.state, FETCH)).toMatchObject({ status: 'Failed', error: 'e2', attempts: 2 });
    expect(statusOf(d.state)).toBe('failed');
  });

  it('fails a non-retryable failure at once', () => {
    given(start)
      .when(failed(FETCH, dispatch(FETCH, 1, start), 'bad input', false))
      .then([
        { type: 'TaskFailed', data: { taskId: FETCH, dispatchId: dispatch(FETCH, 1, start), error: 'bad input', retryable: false, final: true } },
        { type: 'SessionFailed', data: { reason: `task ${FETCH} failed (not retryable): bad input`, taskId: FETCH } },
      ]);
  });
});

describe('decide: cancel, idempotency, invalid input', () => {
  it('cancels a session, after which inputs are rejected and timers do nothing', () => {
    const start = history(submit(TWO));
    const d = given(start).when(cancel('user asked')).then([{ type: 'SessionCancelled', data: { reason: 'user asked' } }]);
    const after = [...start, ...d.events];
    given(after).when(completed(FETCH, dispatch(FETCH, 1, after))).thenRejects('session is cancelled');
    given(after).when(answer(FETCH, 'x')).thenRejects('session is cancelled');
    given(after).when(cancel()).thenRejects('session is cancelled');
    given(after).when(retryDue(FETCH, 2), { now: T0 * 2 }).thenNothing();
  });

  it('marks the tasks a cancel or a failure cuts short Cancelled, with the reason; completed ones stay', () => {
    const start = history(submit(TWO), (s) => completed(FETCH, dispatch(FETCH, 1, s)));
    const d = given(start).when(cancel('user asked')).then([{ type: 'SessionCancelled' }]);
    expect(taskView(d.state, FETCH)).toMatchObject({ status: 'Completed' });
    expect(taskView(d.state, SUMMARIZE)).toMatchObject({ status: 'Cancelled' });
    expect(toPlannerState(d.state).endReason).toBe('user asked');
    expect(toPlannerState(fold(start)).endReason).toBeNull();
    // Context tokens: counted with a counter, -1 without one.
    expect(toPlannerState(d.state).context.tokens).toBe(-1);
    expect(toPlannerState(d.state, bpeTokenCounter).context.tokens).toBe(countItemTokens(d.state.snapshot.context.items, bpeTokenCounter));
    expect(toPlannerState(d.state, bpeTokenCounter).context.tokens).toBeGreaterThan(0);
    // A task waiting for its retry keeps its last error, and shows no retry to come.
    const backoff = history(submit(TWO), (s) => failed(FETCH, dispatch(FETCH, 1, s), 'HTTP 503'));
    expect(taskView(fold(backoff), FETCH)).toMatchObject({ status: 'Planned', retryAt: expect.any(Number) });
    const c2 = given(backoff).when(cancel()).then([{ type: 'SessionCancelled' }]);
    expect(taskView(c2.state, FETCH)).toMatchObject({ status: 'Cancelled', error: 'HTTP 503' });
    expect(taskView(c2.state, FETCH)?.retryAt).toBeUndefined();
    const asking = history(submit(ASK_THEN_WORK));
    const c = given(asking).when(cancel()).then([{ type: 'SessionCancelled' }]);
    expect([taskView(c.state, ASK)?.status, taskView(c.state, DEPLOY)?.status]).toEqual(['Cancelled', 'Cancelled']);
    const two = history(submit(TWO));
    const f = given(two).when(failed(FETCH, dispatch(FETCH, 1, two), 'bad input', false)).then([{ type: 'TaskFailed' }, { type: 'SessionFailed' }]);
    expect(taskView(f.state, FETCH)).toMatchObject({ status: 'Failed', error: 'bad input' });
    expect(taskView(f.state, SUMMARIZE)).toMatchObject({ status: 'Cancelled' });
    expect(toPlannerState(f.state).endReason).toBe(`task ${FETCH} failed (not retryable): bad input`);
  });

  it('rejects anything but SubmitInput for a session that never started, which stays open to start', () => {
    const reason = 'session has not started (no SubmitInput was accepted)';
    given().when(cancel()).thenRejects(reason);
    given().when(answer(FETCH, 'x')).thenRejects(reason);
    given().when(completed(FETCH, dispatch(FETCH, 1, []))).thenRejects(reason);
    const rejected = history(cancel());
    given(rejected).when(submit(TWO)).then([{ type: 'SessionStarted' }, { type: 'TasksPlanned' }, { type: 'TaskDispatched' }]);
  });

  it('does nothing for an input it has already processed (same message id)', () => {
    const start = history([submit(TWO), { messageId: 'dup-1' }]);
    given(start).when(submit('Deploy the app.'), { messageId: 'dup-1' }).thenNothing();
    const failedOnce = history([submit(TWO), { messageId: 'a' }], (s) => [failed(FETCH, dispatch(FETCH, 1, s)), { messageId: 'b' }]);
    given(failedOnce).when(failed(FETCH, dispatch(FETCH, 1, failedOnce)), { messageId: 'b' }).thenNothing();
  });

  it('does nothing for an input older than every one its inbox window remembers, however old its id', () => {
    // A durable consumer created again delivers the stream from its start: inputs that left the
    // window of the last INBOX_WINDOW ids are known by their position below those in it.
    const steps: Array<[PlannerInput, Partial<InputMeta>]> = [[submit(TWO), { messageId: 'first', streamSequence: 1 }]];
    for (let i = 0; i < INBOX_WINDOW + 5; i++) steps.push([invalid('noise'), { messageId: `n${i}`, streamSequence: i + 2 }]);
    const start = history(...steps);
    expect(start[0]!.inputSequence).toBe(1);
    given(start).when(submit('Deploy the app.'), { messageId: 'first', streamSequence: 1 }).thenNothing(); // left the window
    given(start).when(cancel(), { messageId: 'n3', streamSequence: 5 }).thenNothing(); // below the window too
    given(start).when(cancel(), { messageId: 'n1000', streamSequence: 1_002 }).thenNothing(); // in the window, by id
    given(start).when(cancel(), { messageId: 'next', streamSequence: INBOX_WINDOW + 7 }).then([{ type: 'SessionCancelled' }]);
  });

  it('does nothing for a redelivery of the newest input to have left the window: its sequence is the floor, which counts as seen', () => {
    const steps: Array<[PlannerInput, Partial<InputMeta>]> = [[submit(TWO), { messageId: 'first', streamSequence: 1 }]];
    for (let i = 0; i < INBOX_WINDOW + 5; i++) steps.push([invalid('noise'), { messageId: `n${i}`, streamSequence: i + 2 }]);
    const start = history(...steps);
    // Six inputs left the window: first (1) and n0..n4 (2..6); the floor is 6, n4's sequence.
    expect(given(start).state.inputSequenceFloor).toBe(6);
    given(start).when(cancel(), { messageId: 'n4', streamSequence: 6 }).thenNothing();
    // One above the floor that the window does not name was never applied: applied now.
    given(start).when(cancel(), { messageId: 'never-seen', streamSequence: 7 }).then([{ type: 'SessionCancelled' }]);
  });

  it('records a copy stored under a new sequence, so it stays a repeat once its id has left the window', () => {
    // A client republished 'first' after the stream's duplicate window: the broker stored it again at 3.
    const start = history([submit(TWO), { messageId: 'first', streamSequence: 1 }], [invalid('noise'), { messageId: 'n', streamSequence: 2 }]);
    const copy = given(start)
      .when(submit(TWO), { messageId: 'first', streamSequence: 3 })
      .then([{ type: 'InputRepeated', data: { messageId: 'first', streamSequence: 3, appliedSequence: 1 } }]);
    const recorded = [...start, ...copy.events];
    given(recorded).when(submit(TWO), { messageId: 'first', streamSequence: 3 }).thenNothing(); // the copy redelivered
    given(recorded).when(submit(TWO), { messageId: 'first', streamSequence: 1 }).thenNothing(); // the original redelivered
    // A second copy names the sequence the input was applied under, not the first copy's.
    given(recorded)
      .when(submit(TWO), { messageId: 'first', streamSequence: 4 })
      .then([{ type: 'InputRepeated', data: { messageId: 'first', streamSequence: 4, appliedSequence: 1 } }]);
    // The durable consumer is created again after INBOX_WINDOW more inputs: neither comes back.
    const steps: Array<[PlannerInput, Partial<InputMeta>]> = [];
    for (let i = 0; i < INBOX_WINDOW + 2; i++) steps.push([invalid('noise'), { messageId: `later-${i}`, streamSequence: i + 4 }]);
    const later = [...recorded, ...history(...steps).map((e, i) => ({ ...e, sequence: recorded.length + i + 1 }))];
    given(later).when(submit(TWO), { messageId: 'first', streamSequence: 3 }).thenNothing();
    given(later).when(submit(TWO), { messageId: 'first', streamSequence: 1 }).thenNothing();
    // A copy right after the input's own events is an input of its own in the window.
    const direct = history([submit(TWO), { messageId: 'first', streamSequence: 1 }]);
    const directCopy = given(direct).when(submit(TWO), { messageId: 'first', streamSequence: 2 }).then([{ type: 'InputRepeated' }]);
    given([...direct, ...directCopy.events]).when(submit(TWO), { messageId: 'first', streamSequence: 2 }).thenNothing();
    // An ended session rejects every input: a copy needs no record there.
    const ended = history([submit(TWO), { messageId: 'first', streamSequence: 1 }], [cancel(), { messageId: 'stop', streamSequence: 2 }]);
    given(ended).when(submit(TWO), { messageId: 'first', streamSequence: 3 }).thenNothing();
  });

  it('applies an earlier input that arrives after a later one (a lease handover can reorder them), not dropping it', () => {
    const start = history([submit(TWO), { messageId: 'a', streamSequence: 5 }], [invalid('x'), { messageId: 'c', streamSequence: 9 }]);
    given(start).when(cancel(), { messageId: 'b', streamSequence: 7 }).then([{ type: 'SessionCancelled' }]);
    // Without a position (the embedded bus) only the message id counts.
    given(start).when(cancel(), { messageId: 'unplaced' }).then([{ type: 'SessionCancelled' }]);
  });

  it('records an invalid input as rejected, with its reason, type and stream position', () => {
    const d = given(history(submit(TWO)))
      .when(invalid('bad JSON at 1:2', 'TaskCompleted'), { messageId: 'bad-1', streamSequence: 17 })
      .then([{ type: 'InputRejected', data: { reason: 'bad JSON at 1:2', inputType: 'TaskCompleted', messageId: 'bad-1', streamSequence: 17 } }]);
    expect(d.state.snapshot.context.rejected).toBe(1);
    given().when(invalid('too large'), { messageId: 'bad-2' }).then([{ type: 'InputRejected', data: { reason: 'too large', messageId: 'bad-2' } }]);
  });
});

describe('decide: a plug-in plan', () => {
  it('rejects an input whose plan repeats a task id, in itself or from an earlier input', () => {
    const fixed = (ids: string[]) => ({ ...deps, plan: () => ids.map((id) => ({ id, kind: 'Processing' as const, description: `do ${id}`, attachments: [] })) });
    const twice = decide(given().state, submit('Do it.'), metaOf(), fixed(['t1', 't1']));
    expect(twice.events.map((e) => e.type)).toEqual(['InputRejected']);
    expect((twice.events[0]!.data as { reason: string }).reason).toBe('the plan has task id t1 twice (a planner must give each task a new id)');
    const first = decide(given().state, submit('Do it.'), metaOf(), fixed(['t1']));
    const again = decide(first.state, submit('Do more.'), metaOf(), fixed(['t1']));
    expect(again.events.map((e) => e.type)).toEqual(['InputRejected']);
  });

  it("rejects the input on the plan's ValidationError; any other error fails the decision (to be retried), rejecting nothing", () => {
    const throwing = (error: Error) => ({ ...deps, plan: () => { throw error; } });
    const refused = decide(given().state, submit('Do it.'), metaOf(), throwing(new ValidationError('nothing to plan in it')));
    expect(refused.events).toMatchObject([{ type: 'InputRejected', data: { reason: 'nothing to plan in it' } }]);
    expect(() => decide(given().state, submit('Do it.'), metaOf(), throwing(new Error('planner backend down')))).toThrow('planner backend down');
  });
});

describe('decide: context compaction', () => {
  const longResult = Array.from(
    { length: 120 },
    (_, i) => `Line ${i}: the deploy pipeline log shows stage ${i % 7} retried with exit code ${(i * 37) % 256} on runner ${i % 5}.`,
  ).join('\n');

  it('compacts a result over the token budget, keeping pinned answers', () => {
    const budget = 300;
    const events = history(submit(`${QUESTION} Deploy the app. Summarize the deploy log.`, { tokenBudget: budget }), answer(ASK, 'eu-west-1'));
    const d = given(events)
      .when(completed(DEPLOY, dispatch(DEPLOY, 1, events), longResult))
      .then([{ type: 'TaskCompleted' }, { type: 'ContextCompacted' }, { type: 'TaskDispatched' }]);
    const compacted = d.events[1] as EventOf<'ContextCompacted'>;
    expect(compacted.data.budget).toBe(budget);
    // Compacted to 75% of the budget, leaving room for the next results.
    expect(compacted.data.target).toBe(225);
    expect(compacted.data.tokensBefore).toBeGreaterThan(budget);
    expect(compacted.data.tokensAfter).toBeLessThanOrEqual(compacted.data.target!);
    expect(countItemTokens(compacted.data.items, bpeTokenCounter)).toBeLessThanOrEqual(budget);
    expect(compacted.data.folded).toContain(`result-${DEPLOY}`);
    const ids = compacted.data.items.map((i) => i.id);
    expect(ids).toContain('system');
    expect(compacted.data.items.find((i) => i.id === `answer-${ASK}`)).toEqual({
      id: `answer-${ASK}`,
      slot: 'answer',
      text: `Q: ${QUESTION}\nA: eu-west-1`,
      pinned: true,
    });
    // The state holds the compacted context, and the next executor receives it.
    expect(d.state.snapshot.context.items).toEqual(compacted.data.items);
    expect(d.commands[0]).toMatchObject({ type: 'ExecuteTask', context: expect.stringContaining('A: eu-west-1') });
  });

  it('with maxCommandBytes, compacts until each ExecuteTask fits in bytes, under the token budget too', () => {
    const maxCommandBytes = 12_000;
    const byteHeavy = { ...deps, maxCommandBytes };
    const text = Array.from({ length: 6 }, (_, i) => `- Summarise part ${i + 1}`).join('\n');
    // Russian words: ~11 bytes of JSON a token; 6 results hold ~1,500 tokens (budget 50,000), 24 KB.
    const result = 'программирование '.repeat(180);
    let state = decide(given().state, submit(text, { tokenBudget: 50_000 }), metaOf(), byteHeavy).state;
    const sizes: number[] = [];
    let compactions = 0;
    for (let task = currentTask(state); task?.status === 'Running'; task = currentTask(state)) {
      const d = decide(state, completed(task.id, task.dispatchId!, result), metaOf(), byteHeavy);
      compactions += d.events.filter((e) => e.type === 'ContextCompacted').length;
      for (const c of d.commands) if (c.type === 'ExecuteTask') sizes.push(Buffer.byteLength(JSON.stringify(c)));
      state = d.state;
    }
    expect(statusOf(state)).toBe('completed');
    expect(sizes).toHaveLength(5);
    expect(compactions).toBeGreaterThan(0);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(maxCommandBytes);
    // Without the bound the same session sends commands larger than that.
    let unbounded = decide(given().state, submit(text, { tokenBudget: 50_000 }), metaOf(), deps).state;
    const plain: number[] = [];
    for (let task = currentTask(unbounded); task?.status === 'Running'; task = currentTask(unbounded)) {
      const d = decide(unbounded, completed(task.id, task.dispatchId!, result), metaOf(), deps);
      for (const c of d.commands) if (c.type === 'ExecuteTask') plain.push(Buffer.byteLength(JSON.stringify(c)));
      unbounded = d.state;
    }
    expect(Math.max(...plain)).toBeGreaterThan(maxCommandBytes);
  });

  it('with maxCommandBytes, keeps each ContextCompacted event within it too (it lists every item with its fields)', () => {
    const maxCommandBytes = 6_000;
    const text = Array.from({ length: 150 }, (_, i) => `- Check item ${i + 1}`).join('\n');
    let state = decide(given().state, submit(text, { tokenBudget: 50_000 }), metaOf(), { ...deps, maxCommandBytes }).state;
    const sizes: number[] = [];
    for (let task = currentTask(state); task?.status === 'Running'; task = currentTask(state)) {
      const d = decide(state, completed(task.id, task.dispatchId!, `ok ${task.id} done`), metaOf(), { ...deps, maxCommandBytes });
      for (const e of d.events) if (e.type === 'ContextCompacted') sizes.push(Buffer.byteLength(JSON.stringify(e)));
      for (const c of d.commands) if (c.type === 'ExecuteTask') expect(Buffer.byteLength(JSON.stringify(c))).toBeLessThanOrEqual(maxCommandBytes);
      state = d.state;
    }
    expect(statusOf(state)).toBe('completed');
    expect(sizes.length).toBeGreaterThan(0);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(maxCommandBytes);
    // The system prompt is never compacted away.
    expect(state.snapshot.context.items.some((i) => i.slot === 'system')).toBe(true);
  });

  it('with a maxCommandBytes the task alone exceeds, dispatches as before (the publish refuses it, with the reason)', () => {
    for (const maxCommandBytes of [-4_096, 0, 100]) {
      const d = decide(given().state, submit('Summarise the report.'), metaOf(), { ...deps, maxCommandBytes });
      expect(d.events.map((e) => e.type)).toEqual(['SessionStarted', 'TasksPlanned', 'TaskDispatched']);
    }
  });

  it('compacts to a share of the budget, and not again while the context stays under the budget', () => {
    const budget = 300;
    const asked: number[] = [];
    const spy = { ...deps, compactor: { compact: (r: Parameters<typeof deps.compactor.compact>[0]) => (asked.push(r.budget), deps.compactor.compact(r)) } };
    let state = given(history(submit(`${QUESTION} Deploy the app. Summarize the deploy log.`, { tokenBudget: budget }), answer(ASK, 'eu-west-1'))).state;
    let d = decide(state, completed(DEPLOY, dispatch(DEPLOY, 1, state), longResult), metaOf(), spy);
    // 75% of the budget, less a token for each blank line between the context's four items.
    expect(asked).toEqual([225 - 3]);
    state = d.state;
    const next = currentTask(state)!;
    d = decide(state, completed(next.id, next.dispatchId!, 'Summary: two stages retried.'), metaOf(), spy);
    expect(d.events.map((e) => e.type)).toEqual(['TaskCompleted', 'SessionCompleted']);
    expect(asked).toHaveLength(1);
  });

  it('compacts before any dispatch that would carry a context over the budget (a long first input)', () => {
    const budget = 256;
    const d = given().when(submit(`Deploy the app. Summarize the deploy log.\n\n${longResult}`, { tokenBudget: budget }));
    expect(d.decision.events.map((e) => e.type)).toEqual(['SessionStarted', 'TasksPlanned', 'ContextCompacted', 'TaskDispatched']);
    const execute = d.decision.commands[0] as { context: string };
    expect(countItemTokens(d.decision.state.snapshot.context.items, bpeTokenCounter)).toBeLessThanOrEqual(budget);
    expect(bpeTokenCounter.count(execute.context)).toBeLessThanOrEqual(budget); // the items and the blank lines between them
  });

  it('keeps a pinned answer that fits the budget even when it does not fit the compaction target', () => {
    const budget = 300;
    const long = `eu-west-1, because ${Array.from({ length: 46 }, (_, i) => `reason ${i} holds`).join(', ')}.`;
    const events = history(submit(`${QUESTION} Deploy the app. Summarize the deploy log.`, { tokenBudget: budget }), answer(ASK, long));
    const d = given(events)
      .when(completed(DEPLOY, dispatch(DEPLOY, 1, events), longResult))
      .then([{ type: 'TaskCompleted' }, { type: 'ContextCompacted' }, { type: 'TaskDispatched' }]);
    const compacted = d.events[1] as EventOf<'ContextCompacted'>;
    const answerItem = compacted.data.items.find((i) => i.id === `answer-${ASK}`);
    expect(bpeTokenCounter.count(answerItem?.text ?? '')).toBeGreaterThan(225); // over the target…
    expect(answerItem?.text).toBe(`Q: ${QUESTION}\nA: ${long}`); // …yet kept whole
    expect(countItemTokens(compacted.data.items, bpeTokenCounter)).toBeLessThanOrEqual(budget);
  });

  it('does not compact a context that fits the budget', () => {
    const two = history(submit(TWO));
    given(two)
      .when(completed(FETCH, dispatch(FETCH, 1, two), 'short'))
      .then([{ type: 'TaskCompleted' }, { type: 'TaskDispatched' }]);
    // More bytes than the budget, but fewer tokens: the tokenizer runs and nothing changes.
    const bytes = 'ok '.repeat(1000);
    const roomy = history(submit(TWO, { tokenBudget: 2000 }));
    given(roomy)
      .when(completed(FETCH, dispatch(FETCH, 1, roomy), bytes))
      .then([{ type: 'TaskCompleted' }, { type: 'TaskDispatched' }]);
  });

  it('does not compact a context of exactly the token budget, and compacts one a token over it', () => {
    // The system prompt and the input, and a token for the blank line between them: as much as the
    // executor's context can cost (the blank line may merge with what is around it).
    const tokens = bpeTokenCounter.count(defaults.systemPrompt) + bpeTokenCounter.count(TWO) + 1;
    expect(bpeTokenCounter.count(`${defaults.systemPrompt}\n\n${TWO}`)).toBeLessThanOrEqual(tokens);
    // More bytes than tokens, so the decider has to count tokens rather than take its byte shortcut.
    expect(Buffer.byteLength(defaults.systemPrompt) + Buffer.byteLength(TWO)).toBeGreaterThan(tokens);
    given().when(submit(TWO, { tokenBudget: tokens })).then([{ type: 'SessionStarted' }, { type: 'TasksPlanned' }, { type: 'TaskDispatched' }]);
    given()
      .when(submit(TWO, { tokenBudget: tokens - 1 }))
      .then([{ type: 'SessionStarted' }, { type: 'TasksPlanned' }, { type: 'ContextCompacted' }, { type: 'TaskDispatched' }]);
  });
});

describe('decide: the context an executor gets', () => {
  it('stays within the token budget with the blank lines between its items counted (many small results)', () => {
    const budget = 60;
    const text = Array.from({ length: 60 }, (_, i) => `- Step ${i}`).join('\n');
    let d = decide(given().state, submit(text, { tokenBudget: budget, systemPrompt: 'Be brief.' }), metaOf(), deps);
    for (let n = 0; n < 60 && statusOf(d.state) === 'active'; n++) {
      for (const command of d.commands) {
        if (command.type === 'ExecuteTask') expect(bpeTokenCounter.count(command.context), `dispatch ${n}`).toBeLessThanOrEqual(budget);
      }
      const task = currentTask(d.state)!;
      d = decide(d.state, completed(task.id, task.dispatchId!, 'ok'), metaOf(), deps);
    }
    expect(statusOf(d.state)).toBe('completed');
  });
});

describe('decide: reading the state', () => {
  it('currentTask follows the cursor, and is undefined when all are done', () => {
    const one = history(submit('Summarize the flaky tests.'));
    const d = given(one).when(completed(taskIds('Summarize the flaky tests.')[0]!, dispatch(taskIds('Summarize the flaky tests.')[0]!, 1, one)));
    expect(currentTask(d.decision.state)).toBeUndefined();
    expect(statusOf(d.decision.state)).toBe('completed');
  });
});
