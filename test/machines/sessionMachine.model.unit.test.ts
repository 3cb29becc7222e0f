/**
 * Model-based test of the session machine. xstate/graph walks the machine definition (the model)
 * and produces the shortest path to every (state, last transition, task at the cursor) triple, so
 * together the paths take every transition the machine defines. Each path is then replayed through
 * the pure `step` (the system under test: the statechart plus its task actors) and the per-state
 * invariants are checked after every event.
 *
 * The event generator needs to know the task actors' state (attempts, dispatch ids), which a pure
 * machine transition does not update (it returns `sendTo` as an action). So the model carries a
 * shadow: each model snapshot is mapped to the session state `evolve` folds along the same events.
 */
import { describe, expect, it } from 'vitest';
import { createTestModel } from 'xstate/graph';
import { sessionMachine, type SessionContext } from '../../src/machines/sessionMachine.js';
import { evolve, initialSessionState, taskSnapshot, type SessionState } from '../../src/machines/sessionState.js';
import { toPersistedSnapshot } from '../../src/machines/xstateSnapshot.js';
import { referenceInitial, referencePersisted, referenceStep, type XSessionSnapshot as SessionSnapshot } from '../support/xstateReference.js';
import { currentTask, dispatchIdFor, phaseOf, statusOf, taskView } from '../../src/machines/sessionQueries.js';
import { step } from '../../src/machines/sessionState.js';
import { PlannerConfig, type PlannedTask } from '../../src/protocol/domain.js';
import { DomainEvent } from '../../src/protocol/events.js';
import { activeStates, definedStates, definedTransitions, domainEvent, takenTransitions } from './modelSupport.js';

const SID = 's1';
const RUN_ID = 'r0a1b2c3';
const config = PlannerConfig.parse({ systemPrompt: 'You plan.' });

/**
 * The model is the session machine run by xstate itself (the reference fold, which also moves the
 * task actors); each model snapshot maps to the state the compiled fold (`evolve`) reaches along
 * the same events.
 */
const shadow = new WeakMap<SessionSnapshot, SessionState>();
const model = Object.create(sessionMachine) as typeof sessionMachine;
model.transition = (snapshot: SessionSnapshot, event: DomainEvent) => {
  const transitioned = referenceStep(snapshot, event).snapshot;
  // A transition that changes nothing (only a sendTo) returns the same object: copy it, so that
  // each snapshot keeps its own shadow. Snapshots are plain objects; their methods use `this`.
  const next = transitioned === snapshot ? ({ ...transitioned } as SessionSnapshot) : transitioned;
  const before = shadow.get(snapshot)!;
  shadow.set(next, evolve(before, { ...event, sequence: before.version + 1 }));
  return next;
};
const start = initialSessionState(SID);
const modelStart = referenceInitial(SID);
shadow.set(modelStart, start);

function plannedTask(n: number, kind: 'Processing' | 'Clarification'): PlannedTask {
  return kind === 'Processing'
    ? { id: `t${n}-p`, description: `Summarize report ${n}.`, kind, attachments: [] }
    : { id: `t${n}-q`, description: `Which region for ${n}?`, kind, attachments: [] };
}

/** Every event the session could receive next, given its (shadow) state; valid domain events. */
function eventsFor(snapshot: SessionSnapshot): DomainEvent[] {
  const state = shadow.get(snapshot)!;
  const ctx = state.snapshot.context;
  const task = currentTask(state);
  const events: DomainEvent[] = [
    domainEvent('InputRejected', { reason: 'bad input', inputType: 'SubmitInput' }),
    domainEvent('ReportIgnored', { taskId: task?.id ?? 'none', dispatchId: task?.dispatchId ?? 'none', report: 'TaskCompleted', reason: 'late' }),
  ];
  const status = statusOf(state);
  if (status === 'idle') {
    // A session started with a run id, and one started before run ids existed (an older log).
    events.push(
      domainEvent('SessionStarted', { config, runId: RUN_ID }),
      domainEvent('SessionStarted', { config }),
      domainEvent('SessionCancelled', { reason: 'never mind' }),
    );
  }
  if (status !== 'active') return events;
  const n = ctx.order.length + 1;
  events.push(
    domainEvent('TasksPlanned', { input: `Summarize report ${n}.`, tasks: [plannedTask(n, 'Processing')] }),
    domainEvent('TasksPlanned', { input: `Which region for ${n}?`, tasks: [plannedTask(n, 'Clarification')] }),
    domainEvent('ContextCompacted', {
      budget: 100,
      tokensBefore: 150,
      tokensAfter: 40,
      folded: ctx.items.filter((i) => !i.pinned).map((i) => i.id),
      items: [...ctx.items.filter((i) => i.pinned), { id: 'summary', slot: 'summary', text: 'Summary of folded context:', pinned: false }],
    }),
    domainEvent('SessionFailed', { reason: 'gave up', ...(task ? { taskId: task.id } : {}) }),
    domainEvent('SessionCancelled', { reason: 'stop' }),
  );
  const phase = phaseOf(state);
  if (!task) {
    if (phase === 'ready') events.push(domainEvent('SessionCompleted', { tasks: ctx.order.length }));
    return events;
  }
  const taskId = task.id;
  const next = task.attempts + 1;
  const dispatch = domainEvent('TaskDispatched', { taskId, dispatchId: dispatchIdFor(SID, taskId, next, ctx.runId), attempt: next, kind: task.kind });
  if (phase === 'ready' && task.status === 'Planned') {
    events.push(task.kind === 'Clarification' ? domainEvent('ClarificationRequested', { taskId, question: task.description }) : dispatch);
  }
  if (phase === 'running' && task.status === 'Running') {
    const dispatchId = task.dispatchId!;
    events.push(
      domainEvent('TaskCompleted', { taskId, dispatchId, output: `result of ${taskId}` }),
      domainEvent('TaskFailed', { taskId, dispatchId, error: 'timeout', retryable: true, final: false }),
      domainEvent('TaskFailed', { taskId, dispatchId, error: 'fatal', retryable: false, final: true }),
      domainEvent('ClarificationRequested', { taskId, question: 'Which bucket?', dispatchId }),
    );
  }
  if (phase === 'backoff' && task.status === 'Planned') {
    events.push(domainEvent('TaskRetryScheduled', { taskId, attempt: next, dueAt: 1000 * next }), dispatch);
  }
  if (phase === 'awaitingClarification' && task.status === 'NeedsClarification') {
    events.push(domainEvent('ClarificationProvided', { taskId, answer: 'eu-west-1', ...(task.question ? { question: task.question } : {}) }));
  }
  return events;
}

function serialize(snapshot: SessionSnapshot, event?: DomainEvent, prev?: SessionSnapshot): string {
  const state = shadow.get(snapshot)!;
  const task = currentTask(state);
  const via = event && prev ? takenTransitions(sessionMachine, prev, event).join(',') : 'init';
  // Sessions with and without a run id are told apart, so that paths cover both.
  const run = state.snapshot.context.runId === null ? 'no run id' : 'run id';
  return `${JSON.stringify(snapshot.value)}|${via}|${task ? `${task.kind}:${task.status}` : 'none'}|${run}`;
}

const paths = createTestModel(model, {
  events: (s) => eventsFor(s),
  // createTestModel adds a bare `{ type }` for an event type the generator gave nothing for: drop those.
  filterEvents: (s, e) => 'data' in e && takenTransitions(sessionMachine, s, e).length > 0,
  serializeState: (s, e, prev) => serialize(s, e, prev),
}).getShortestPaths({ fromState: modelStart });

/** What must hold in each state, whatever path led there. */
function checkInvariants(state: SessionState, events: number): void {
  const ctx: SessionContext = state.snapshot.context;
  const status = statusOf(state);
  const phase = phaseOf(state);
  const tasks = ctx.order.map((id) => taskView(state, id)!);
  expect(state.version).toBe(events);
  expect(ctx.cursor).toBeLessThanOrEqual(ctx.order.length);
  expect(state.snapshot.children.keys().sort()).toEqual([...ctx.order].sort());
  tasks.slice(0, ctx.cursor).forEach((t) => expect(t.status).toBe('Completed'));
  tasks.slice(ctx.cursor + 1).forEach((t) => expect(t).toMatchObject({ status: 'Planned', attempts: 0 }));
  expect(tasks.filter((t) => t.status === 'Running').length).toBeLessThanOrEqual(1);
  expect(sessionMachine.resolveState({ value: state.snapshot.value, context: ctx }).hasTag('terminal')).toBe(['completed', 'failed', 'cancelled'].includes(status));
  if (status === 'idle') {
    expect(ctx.config).toBeNull();
    expect(ctx.runId).toBeNull();
    expect(ctx.order).toEqual([]);
  } else if (status !== 'cancelled' || ctx.config) {
    expect(ctx.items[0]).toMatchObject({ id: 'system', slot: 'system', pinned: true });
  }
  if (status === 'completed') expect(ctx.cursor).toBe(ctx.order.length);
  if (status !== 'active') return;
  const task = currentTask(state);
  switch (phase) {
    case 'ready':
      expect(tasks.some((t) => t.status === 'Running')).toBe(false);
      if (task) expect(task.status).toBe('Planned');
      break;
    case 'running':
      expect(task).toMatchObject({ status: 'Running', dispatchId: dispatchIdFor(SID, task!.id, task!.attempts, ctx.runId) });
      expect(task!.attempts).toBeGreaterThanOrEqual(1);
      expect(task!.kind).not.toBe('Clarification');
      break;
    case 'backoff':
      expect(['Planned', 'Failed']).toContain(task?.status);
      expect(task!.error).toBeDefined();
      break;
    case 'awaitingClarification':
      expect(task?.status).toBe('NeedsClarification');
      expect(task!.question).toBeDefined();
      break;
    default:
      throw new Error(`unexpected phase ${phase}`);
  }
}

/** Replays a path through `step`; returns the state nodes and transitions it visited. */
function replay(path: (typeof paths)[number]) {
  const states = new Set<string>(activeStates('session', start.snapshot.value));
  const transitions = new Set<string>();
  let state = start;
  let modelBefore = modelStart;
  let count = 0;
  for (const s of path.steps) {
    if ((s.event.type as string) === 'xstate.init') continue; // alterPath's first step
    const sequence = state.version + 1;
    const event = { ...s.event, id: `path/${sequence}`, sequence, causationId: `in-${sequence}` } as DomainEvent;
    expect(DomainEvent.parse(event)).toEqual(event);
    takenTransitions(sessionMachine, modelBefore, event).forEach((t) => transitions.add(t));
    const result = step(state, event);
    // The reference is folded along this path itself: the graph merges states with equal keys,
    // so a path's model snapshot may carry counters from another path.
    const reference = referenceStep(modelBefore, event);
    state = result.state;
    modelBefore = reference.snapshot;
    count++;
    // The compiled fold and xstate agree on everything: state value, context, every task actor.
    expect(state.snapshot.value, path.description).toEqual(s.state.value);
    expect(toPersistedSnapshot(state.snapshot), path.description).toEqual(referencePersisted(reference.snapshot));
    expect(result.commands).toEqual(reference.commands);
    checkInvariants(state, count);
    activeStates('session', state.snapshot.value).forEach((id) => states.add(id));
    // Effects: a dispatch emits ExecuteTask, a question RequestClarification, nothing else does.
    const expected =
      event.type === 'TaskDispatched'
        ? [expect.objectContaining({ type: 'ExecuteTask', taskId: event.data.taskId, dispatchId: event.data.dispatchId, attempt: event.data.attempt })]
        : event.type === 'ClarificationRequested'
          ? [{ type: 'RequestClarification', sessionId: SID, taskId: event.data.taskId, question: event.data.question }]
          : [];
    expect(result.commands, `${event.type} in ${path.description}`).toEqual(expected);
  }
  return { states, transitions };
}

describe('sessionMachine (model-based)', () => {
  it('generates paths from the machine definition', () => {
    expect(paths.length).toBeGreaterThan(10);
  });

  it('replays every path through step, keeping the invariants, and covers every state and transition', () => {
    const states = new Set<string>();
    const transitions = new Set<string>();
    for (const path of paths) {
      const visited = replay(path);
      visited.states.forEach((s) => states.add(s));
      visited.transitions.forEach((t) => transitions.add(t));
    }
    expect([...states].sort()).toEqual([...definedStates(sessionMachine)].sort());
    expect([...transitions].sort()).toEqual([...definedTransitions(sessionMachine)].sort());
    // Both kinds of session, with a run id and from before them, get as far as a running task.
    const running = paths.filter((p) => p.state.matches({ active: 'running' })).map((p) => shadow.get(p.state)!.snapshot.context.runId);
    expect(new Set(running)).toEqual(new Set([RUN_ID, null]));
  });

  it('forwards task events to the task actors, as xstate does', () => {
    const path = paths.find((p) => p.state.matches({ active: 'running' }))!;
    const { states } = replay(path);
    expect(states.has('session.active.running')).toBe(true);
    const modelChild = path.state.children[path.state.context.order[path.state.context.cursor]!]!;
    expect(modelChild.getSnapshot().value).toBe('Running');
    const replayed = path.steps.slice(1).reduce<SessionState>(
      (st, s) => evolve(st, { ...s.event, sequence: st.version + 1 } as DomainEvent),
      start,
    );
    expect(taskSnapshot(replayed, replayed.snapshot.context.order[replayed.snapshot.context.cursor]!)?.value).toBe('Running');
  });
});
