/**
 * Model-based test of the task machine: xstate/graph walks the machine definition and produces the
 * shortest path to every (state, last transition) pair, so together the paths take every transition
 * the machine defines. Each path is replayed through the pure transition (as the session applies it
 * to its task actors) and checked against per-state invariants.
 */
import { describe, expect, it } from 'vitest';
import { createTestModel } from 'xstate/graph';
import { pureInitial, pureTransition } from '../support/pureTransition.js';
import { dispatchIdFor } from '../../src/machines/sessionQueries.js';
import { taskMachine, type TaskContext, type TaskEvent } from '../../src/machines/taskMachine.js';
import type { SnapshotFrom } from 'xstate';
import { compileMachine } from '../../src/machines/compiledMachine.js';
import { DomainEvent } from '../../src/protocol/events.js';
import type { PlannedTask } from '../../src/protocol/domain.js';
import { activeStates, definedStates, definedTransitions, domainEvent, takenTransitions } from './modelSupport.js';

type TaskSnapshot = SnapshotFrom<typeof taskMachine>;
const compiledTask = compileMachine<TaskContext>(taskMachine, true);

const PROCESSING: PlannedTask = { id: 't1-aaaa', description: 'Summarize the logs.', kind: 'Processing', attachments: [] };
const TOOL: PlannedTask = {
  id: 't2-bbbb',
  description: 'Fetch https://example.com/x',
  kind: 'ToolCall',
  attachments: [{ kind: 'url', url: 'https://example.com/x' }],
};
const CLARIFICATION: PlannedTask = { id: 't3-cccc', description: 'Which region?', kind: 'Clarification', attachments: [] };

/** Every event a task could receive next, valid domain events; both variants of guarded ones. */
function eventsFor(snapshot: TaskSnapshot): TaskEvent[] {
  const c = snapshot.context;
  const taskId = c.id;
  const next = c.attempts + 1;
  const current = c.dispatchId ?? dispatchIdFor('s1', taskId, Math.max(1, c.attempts));
  const answer = domainEvent('ClarificationProvided', { taskId, answer: 'eu-west-1', ...(c.question ? { question: c.question } : {}) });
  // The decider never dispatches a Clarification task: it asks, and the answer completes it.
  // The session forwards its end to every task not yet completed.
  const ends = [domainEvent('SessionCancelled', { reason: 'user stopped it' }), domainEvent('SessionFailed', { reason: 'task t0 failed: boom', taskId: 't0' })];
  if (c.kind === 'Clarification') return [domainEvent('ClarificationRequested', { taskId, question: c.description }), answer, ...ends];
  return [
    ...ends,
    domainEvent('TaskDispatched', { taskId, dispatchId: dispatchIdFor('s1', taskId, next), attempt: next, kind: c.kind }),
    domainEvent('TaskRetryScheduled', { taskId, attempt: next, dueAt: 1000 * next }),
    // Planned ignores this one (guard asksDirectly); Running relays the executor's question.
    domainEvent('ClarificationRequested', { taskId, question: 'Which bucket?', dispatchId: current }),
    domainEvent('TaskCompleted', { taskId, dispatchId: current, output: `output of attempt ${c.attempts}` }),
    domainEvent('TaskFailed', { taskId, dispatchId: current, error: `error ${c.attempts}`, retryable: true, final: false }),
    domainEvent('TaskFailed', { taskId, dispatchId: current, error: `fatal ${c.attempts}`, retryable: false, final: true }),
    answer,
  ];
}

/** What must hold in each state, whatever path led there. */
function checkInvariants(s: TaskSnapshot, task: PlannedTask): void {
  const c = s.context;
  expect({ id: c.id, description: c.description, kind: c.kind, attachments: c.attachments }).toEqual(task);
  expect(c.attempts).toBeGreaterThanOrEqual(0);
  switch (s.value) {
    case 'Planned':
      if (c.attempts > 0) expect(c.error ?? c.answer).toBeDefined(); // back from a failure or a question
      break;
    case 'Running':
      expect(c.kind).not.toBe('Clarification');
      expect(c.attempts).toBeGreaterThanOrEqual(1);
      expect(c.dispatchId).toBe(dispatchIdFor('s1', c.id, c.attempts));
      expect(c.retryAt).toBeUndefined();
      break;
    case 'NeedsClarification':
      expect(c.question).toBeDefined();
      break;
    case 'Completed':
      expect(c.result).toBeDefined();
      if (c.kind === 'Clarification') {
        expect(c.result).toBe(c.answer);
        expect(c.attempts).toBe(0);
      } else expect(c.dispatchId).toBeDefined();
      break;
    case 'Failed':
      expect(c.error).toBeDefined();
      expect(c.attempts).toBeGreaterThanOrEqual(1);
      break;
    case 'Cancelled':
      expect(c.retryAt).toBeUndefined();
      break;
    default:
      throw new Error(`unexpected state ${String(s.value)}`);
  }
  expect(s.hasTag('terminal')).toBe(s.value === 'Completed' || s.value === 'Failed' || s.value === 'Cancelled');
}

/** Paths covering each (state, incoming transition) pair reachable for a task planned as `task`. */
function pathsFor(task: PlannedTask) {
  const model = createTestModel(taskMachine, {
    events: (s) => eventsFor(s),
    // createTestModel adds a bare `{ type }` for an event type the generator gave nothing for: drop those.
    filterEvents: (s, e) => 'data' in e && takenTransitions(taskMachine, s, e).length > 0,
    serializeState: (s, e, prev) =>
      `${JSON.stringify(s.value)}|${e && prev ? takenTransitions(taskMachine, prev, e).join(',') : 'init'}`,
  });
  return model.getShortestPaths({ input: task });
}

/** Replays every path of a task through pureTransition; returns the states and transitions visited. */
function replayAll(task: PlannedTask) {
  const states = new Set<string>();
  const transitions = new Set<string>();
  const paths = pathsFor(task);
  expect(paths.length).toBeGreaterThan(0); // prefixes of longer paths are dropped
  for (const path of paths) {
    let [snapshot] = pureInitial(taskMachine, task) as [TaskSnapshot, unknown];
    let compiled = compiledTask.initial(task);
    expect({ value: compiled.value, context: compiled.context, children: compiled.children.size }).toEqual({ value: snapshot.value, context: snapshot.context, children: 0 });
    checkInvariants(snapshot, task);
    activeStates('task', snapshot.value).forEach((id) => states.add(id));
    for (const step of path.steps) {
      if ((step.event.type as string) === 'xstate.init') continue; // alterPath's first step
      const event = step.event as TaskEvent;
      expect(DomainEvent.parse(event)).toEqual(event);
      takenTransitions(taskMachine, snapshot, event).forEach((t) => transitions.add(t));
      [snapshot] = pureTransition(taskMachine, snapshot, event);
      [compiled] = compiledTask.transition(compiled, event);
      expect(snapshot.value, path.description).toEqual(step.state.value);
      // The compiled machine agrees with xstate on state and context (toEqual: an undefined
      // field in xstate's context is a field the compiled one removed).
      expect({ value: compiled.value, context: compiled.context }, path.description).toEqual({ value: snapshot.value, context: snapshot.context });
      checkInvariants(snapshot, task);
      activeStates('task', snapshot.value).forEach((id) => states.add(id));
    }
  }
  return { states, transitions };
}

describe('taskMachine (model-based)', () => {
  it.each([PROCESSING, TOOL, CLARIFICATION])('replays every path of a $kind task through the pure transition', (task) => {
    const { states } = replayAll(task);
    expect(states.has('task.Completed')).toBe(true);
  });

  it('covers every state and every transition the machine defines', () => {
    const states = new Set<string>();
    const transitions = new Set<string>();
    for (const task of [PROCESSING, CLARIFICATION]) {
      const visited = replayAll(task);
      visited.states.forEach((x) => states.add(x));
      visited.transitions.forEach((x) => transitions.add(x));
    }
    expect([...states].sort()).toEqual([...definedStates(taskMachine)].sort());
    expect([...transitions].sort()).toEqual([...definedTransitions(taskMachine)].sort());
  });

  it('guards: a task that is not a question is never asked directly, and an answer re-plans it', () => {
    const [planned] = pureInitial(taskMachine, PROCESSING) as [TaskSnapshot, unknown];
    const ask = domainEvent('ClarificationRequested', { taskId: PROCESSING.id, question: 'Why?' });
    expect(takenTransitions(taskMachine, planned, ask)).toEqual([]);
    expect(pureTransition(taskMachine, planned, ask)[0].value).toBe('Planned');
    const [clarification] = pureInitial(taskMachine, CLARIFICATION) as [TaskSnapshot, unknown];
    expect(pureTransition(taskMachine, clarification, ask)[0].value).toBe('NeedsClarification');
  });

  it('terminal states ignore every further event', () => {
    for (const task of [PROCESSING, CLARIFICATION]) {
      for (const path of pathsFor(task).filter((p) => p.state.hasTag('terminal'))) {
        for (const event of eventsFor(path.state)) {
          expect(takenTransitions(taskMachine, path.state, event)).toEqual([]);
        }
      }
    }
  });
});
