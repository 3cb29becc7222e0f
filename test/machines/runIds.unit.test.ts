/**
 * Run ids: each start of a session id draws one (SessionStarted's `runId`), and every dispatch id
 * of that run carries it, `<session>.<runId>.<task>.<attempt>`. Task ids are a hash of the text, so
 * without it a session id used again after its log was purged, with the same text, would repeat
 * the earlier run's dispatch ids: executors' inboxes would answer with that run's reports, and
 * JetStream would drop the new reports as duplicates. Sessions started before run ids keep
 * `<session>.<task>.<attempt>`.
 */
import { describe, expect, it } from 'vitest';
import { decide, type PlannerInput } from '../../src/machines/decide.js';
import { dispatchIdFor, taskView } from '../../src/machines/sessionQueries.js';
import { evolve, fold, initialSessionState, restoreState, serializeState, type SessionState } from '../../src/machines/sessionState.js';
import { inboxKey } from '../../src/nats/executorInbox.js';
import { PlannerConfig } from '../../src/protocol/domain.js';
import { DomainEvent, EVENT_SCHEMA_VERSION, type EventOf } from '../../src/protocol/events.js';
import type { InputMeta } from '../../src/protocol/inputs.js';
import { completed, deps, failed, retryDue, SESSION, submit, T0, taskIds } from './deciderSpecification.js';

const TEXT = 'Fetch the logs. Summarize the flaky tests.';
const [FETCH, SUMMARIZE] = taskIds(TEXT) as [string, string];
const json = (state: SessionState): string => JSON.stringify(serializeState(state));

/** Starts a fresh run of the spec session with `meta`: the decision, its run id and first dispatch id. */
function start(meta: InputMeta, text = TEXT) {
  const d = decide(initialSessionState(SESSION), submit(text), meta, deps);
  const started = d.events.find((e): e is EventOf<'SessionStarted'> => e.type === 'SessionStarted')!;
  const dispatched = d.events.find((e): e is EventOf<'TaskDispatched'> => e.type === 'TaskDispatched')!;
  return { decision: d, runId: started.data.runId, dispatchId: dispatched.data.dispatchId };
}

/** Runs `inputs` on from `state`, each with a fresh message id at `now` T0 + its index. */
function drive(state: SessionState, inputs: ReadonlyArray<(s: SessionState) => PlannerInput>, tag: string) {
  const events: DomainEvent[] = [];
  inputs.forEach((input, i) => {
    const d = decide(state, input(state), { messageId: `${tag}-${i}`, now: T0 + 1_000 * (i + 1) }, deps);
    events.push(...d.events);
    state = d.state;
  });
  return { state, events };
}

describe('run ids: a new start of a session id gets dispatch ids of its own', () => {
  it('names the run in every dispatch id: <session>.<runId>.<task>.<attempt>', () => {
    const { decision, runId, dispatchId } = start({ messageId: 'first', now: T0 });
    expect(runId).toMatch(/^[0-9a-f]{8}$/);
    expect(decision.state.snapshot.context.runId).toBe(runId);
    expect(dispatchId).toBe(`${SESSION}.${runId}.${FETCH}.1`);
    expect(decision.commands).toEqual([expect.objectContaining({ type: 'ExecuteTask', dispatchId })]);
    // Every later dispatch of the run, a retry's too, carries the same run id.
    const { events } = drive(
      decision.state,
      [
        (s) => failed(FETCH, taskView(s, FETCH)!.dispatchId!, 'flaky', true),
        () => retryDue(FETCH, 2),
        (s) => completed(FETCH, taskView(s, FETCH)!.dispatchId!),
      ],
      'later',
    );
    const dispatched = events.filter((e): e is EventOf<'TaskDispatched'> => e.type === 'TaskDispatched').map((e) => e.data.dispatchId);
    expect(dispatched).toEqual([`${SESSION}.${runId}.${FETCH}.2`, `${SESSION}.${runId}.${SUMMARIZE}.1`]);
  });

  it('gives two runs of the same session id and text, started by different inputs, different dispatch ids', () => {
    // The log of the first run is purged; the session id is used again for the same text.
    const first = start({ messageId: 'first', now: T0 });
    const starts: Array<[string, InputMeta]> = [
      ['another message id', { messageId: 'second', now: T0 }],
      ['another time', { messageId: 'first', now: T0 + 1 }],
      ['another stream position', { messageId: 'first', now: T0, streamSequence: 7 }],
    ];
    const runs = starts.map(([, meta]) => start(meta));
    // The task ids are the same (a hash of the text): only the run id tells the dispatches apart.
    for (const run of runs) expect(taskView(run.decision.state, FETCH)).toBeDefined();
    const runIds = [first, ...runs].map((r) => r.runId);
    const dispatchIds = [first, ...runs].map((r) => r.dispatchId);
    expect(new Set(runIds).size, starts.map(([why]) => why).join(', ')).toBe(runIds.length);
    expect(new Set(dispatchIds).size).toBe(dispatchIds.length);
    // The earlier run's report (an executor's inbox keeps it) is no report of the new run's dispatch.
    for (const run of runs) {
      const stale = decide(run.decision.state, completed(FETCH, first.dispatchId, 'the old run'), { messageId: `report.${first.dispatchId}`, now: T0 + 5 }, deps);
      expect(stale.events.map((e) => e.type)).toEqual(['InputRejected']);
      expect((stale.events[0] as EventOf<'InputRejected'>).data.reason).toBe(`unknown dispatch ${first.dispatchId} for task ${FETCH}`);
      const own = decide(run.decision.state, completed(FETCH, run.dispatchId, 'this run'), { messageId: `report.${run.dispatchId}`, now: T0 + 5 }, deps);
      expect(own.events.map((e) => e.type)).toEqual(['TaskCompleted', 'TaskDispatched']);
    }
  });

  it('gives the same run id and dispatch ids when the same input is decided again (deterministic)', () => {
    const meta: InputMeta = { messageId: 'first', now: T0, streamSequence: 3 };
    const a = start(meta);
    const b = start({ ...meta });
    expect(b.runId).toBe(a.runId);
    expect(b.decision.events).toEqual(a.decision.events);
    expect(b.decision.commands).toEqual(a.decision.commands);
    // The run id lives in the log: a replay, and a snapshot round trip, give the live state's.
    const replayed = fold(initialSessionState(SESSION), a.decision.events);
    expect(replayed.snapshot.context.runId).toBe(a.runId);
    expect(json(replayed)).toBe(json(a.decision.state));
    const restored = restoreState(JSON.parse(json(a.decision.state)));
    expect(restored.snapshot.context.runId).toBe(a.runId);
    const next = (s: SessionState) => decide(s, completed(FETCH, a.dispatchId), { messageId: 'r', now: T0 + 9 }, deps);
    expect(next(restored).events).toEqual(next(a.decision.state).events);
  });

  it('gives a dispatch id the executors keep as it is, as their inbox and claim key', () => {
    const { dispatchId } = start({ messageId: 'first', now: T0 });
    expect(inboxKey(dispatchId)).toBe(dispatchId);
  });
});

describe('run ids: a session started before them keeps its dispatch ids', () => {
  const config = PlannerConfig.parse({});
  /** SessionStarted as an older jetplan wrote it: no run id. */
  const legacyStart = DomainEvent.parse({
    id: 'old/1',
    type: 'SessionStarted',
    version: EVENT_SCHEMA_VERSION,
    sessionId: SESSION,
    sequence: 1,
    timestamp: T0,
    causationId: 'old',
    correlationId: SESSION,
    data: { config },
  });
  const legacy = evolve(initialSessionState(SESSION), legacyStart);

  it('has no run id, and dispatches <session>.<task>.<attempt>', () => {
    expect(legacy.snapshot.context.runId).toBeNull();
    const d = decide(legacy, submit(TEXT), { messageId: 'more', now: T0 + 1 }, deps);
    // A session already started gets no new run id from a later input.
    expect(d.events.map((e) => e.type)).toEqual(['TasksPlanned', 'TaskDispatched']);
    expect(d.events[1]!.data).toMatchObject({ taskId: FETCH, dispatchId: `${SESSION}.${FETCH}.1` });
    expect(d.state.snapshot.context.runId).toBeNull();
  });

  it('accepts reports for those ids, retries under them, and refuses ids of the new form', () => {
    const planned = decide(legacy, submit(TEXT), { messageId: 'more', now: T0 + 1 }, deps).state;
    const newForm = `${SESSION}.0a1b2c3d.${FETCH}.1`;
    const refused = decide(planned, completed(FETCH, newForm), { messageId: 'odd', now: T0 + 2 }, deps);
    expect(refused.events.map((e) => e.type)).toEqual(['InputRejected']);
    const { events, state } = drive(
      planned,
      [() => failed(FETCH, `${SESSION}.${FETCH}.1`, 'flaky', true), () => retryDue(FETCH, 2), () => completed(FETCH, `${SESSION}.${FETCH}.2`, 'logs')],
      'old',
    );
    expect(events.map((e) => e.type)).toEqual(['TaskFailed', 'TaskRetryScheduled', 'TaskDispatched', 'TaskCompleted', 'TaskDispatched']);
    const dispatched = events.filter((e): e is EventOf<'TaskDispatched'> => e.type === 'TaskDispatched').map((e) => e.data.dispatchId);
    expect(dispatched).toEqual([`${SESSION}.${FETCH}.2`, `${SESSION}.${SUMMARIZE}.1`]);
    expect(dispatched).toEqual([dispatchIdFor(SESSION, FETCH, 2), dispatchIdFor(SESSION, SUMMARIZE, 1)]);
    expect(taskView(state, FETCH)).toMatchObject({ status: 'Completed', result: 'logs' });
  });

  it('restores a snapshot saved before run ids (no runId in its context) as such a session', () => {
    const planned = decide(legacy, submit(TEXT), { messageId: 'more', now: T0 + 1 }, deps).state;
    // What serializeState gave before the context had a run id.
    const saved = JSON.parse(json(planned)) as { snapshot: { context: Record<string, unknown> } };
    delete saved.snapshot.context.runId;
    const restored = restoreState(saved);
    expect(restored.snapshot.context.runId).toBeNull();
    expect(json(restored)).toBe(json(planned));
    const report = completed(FETCH, `${SESSION}.${FETCH}.1`);
    const meta: InputMeta = { messageId: 'report', now: T0 + 2 };
    const fromSnapshot = decide(restored, report, meta, deps);
    expect(fromSnapshot.events.map((e) => e.type)).toEqual(['TaskCompleted', 'TaskDispatched']);
    expect(fromSnapshot.events).toEqual(decide(planned, report, meta, deps).events);
    expect(json(fromSnapshot.state)).toBe(json(decide(planned, report, meta, deps).state));
  });
});
