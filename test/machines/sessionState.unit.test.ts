import { describe, expect, it } from 'vitest';
import { decide, type PlannerInput } from '../../src/machines/decide.js';
import {
  evolve,
  fold as foldOnto,
  INBOX_WINDOW,
  initialSessionState,
  restoreState,
  serializeState,
  step,
  taskSnapshot,
  type SessionState,
} from '../../src/machines/sessionState.js';
import { currentTask, outstanding, phaseOf, statusOf, toPlannerState } from '../../src/machines/sessionQueries.js';
import {
  answer,
  completed,
  deps,
  dispatch,
  failed,
  fold,
  metaOf,
  needs,
  retryDue,
  run,
  SESSION,
  stored,
  submit,
  T0,
  taskIds,
  type Step,
} from './deciderSpecification.js';

const TEXT = 'Fetch the logs. Which region should we deploy to? Summarize the flaky tests.';
const [FETCH, ASK, SUMMARIZE] = taskIds(TEXT) as [string, string, string];

/** serializeState → JSON text → parse → restoreState, as a snapshot store does. */
const roundTrip = (state: SessionState): SessionState => restoreState(JSON.parse(JSON.stringify(serializeState(state))));
const json = (state: SessionState): string => JSON.stringify(serializeState(state));

/** A session walked through every phase, with the state after each input. */
const STEPS: Step[] = [
  submit(TEXT),
  (s) => needs(FETCH, dispatch(FETCH, 1, s), 'Which bucket?'),
  answer(FETCH, 'the prod bucket'),
  (s) => failed(FETCH, dispatch(FETCH, 2, s), 'timeout'),
  [retryDue(FETCH, 3), { now: T0 + 60_000 }],
  (s) => completed(FETCH, dispatch(FETCH, 3, s), 'logs'),
  answer(ASK, 'eu-west-1'),
  (s) => completed(SUMMARIZE, dispatch(SUMMARIZE, 1, s), 'summary'),
];

function statesAlong(steps: readonly Step[]): SessionState[] {
  const states = [initialSessionState(SESSION)];
  for (const s of steps) states.push(run([s], states.at(-1)!).state);
  return states;
}

describe('session state snapshots', () => {
  const states = statesAlong(STEPS);

  it('walks through every phase of the session', () => {
    expect(states.map((s) => `${statusOf(s)}/${phaseOf(s)}`)).toEqual([
      'idle/ready',
      'active/running',
      'active/awaitingClarification',
      'active/running',
      'active/backoff',
      'active/running',
      'active/awaitingClarification',
      'active/running',
      'completed/done',
    ]);
  });

  it('survive a JSON round trip at every point, task actors included', () => {
    for (const state of states) {
      const restored = roundTrip(state);
      expect(json(restored)).toBe(json(state));
      expect(restored.snapshot.value).toEqual(state.snapshot.value);
      for (const id of state.snapshot.context.order) {
        expect(taskSnapshot(restored, id)?.value).toBe(taskSnapshot(state, id)?.value);
        expect(taskSnapshot(restored, id)?.context).toEqual(taskSnapshot(state, id)?.context);
      }
      expect(toPlannerState(restored)).toEqual(toPlannerState(state));
      expect(outstanding(restored)).toEqual(outstanding(state));
    }
  });

  it('a restored state decides exactly like the live one (xstate rehydration)', () => {
    for (let i = 0; i < STEPS.length; i++) {
      const step = STEPS[i]!;
      const s = typeof step === 'function' ? step(states[i]!) : step;
      const [input, meta] = Array.isArray(s) ? s : [s, {}];
      const m = metaOf({ messageId: `rt-${i}`, ...meta });
      const live = decide(states[i]!, input as PlannerInput, m, deps);
      const rehydrated = decide(roundTrip(states[i]!), input as PlannerInput, m, deps);
      expect(rehydrated.events).toEqual(live.events);
      expect(rehydrated.commands).toEqual(live.commands);
      expect(json(rehydrated.state)).toBe(json(live.state));
    }
  });

  it('a restored state folds further events exactly like the live one', () => {
    const { events } = run(STEPS);
    for (let cut = 0; cut <= events.length; cut++) {
      const head = fold(events.slice(0, cut));
      const resumed = events.slice(cut).reduce(evolve, roundTrip(head));
      expect(json(resumed)).toBe(json(fold(events)));
    }
  });

  it('step rejects an event out of sequence', () => {
    const events = run([submit(TEXT)]).events;
    const state = fold(events.slice(0, 1));
    expect(() => step(state, events[2]!)).toThrow(/event 3 does not follow version 1/);
    expect(() => step(state, events[0]!)).toThrow(/event 1 does not follow version 1/);
    expect(() => step(state, { ...events[1]!, sequence: 2 })).not.toThrow();
  });

  it('step returns the commands of the transition; evolve drops them', () => {
    const events = run([submit(TEXT)]).events;
    const before = fold(events.slice(0, 2));
    const { state, commands } = step(before, events[2]!);
    expect(commands).toEqual([expect.objectContaining({ type: 'ExecuteTask', taskId: FETCH, attempt: 1 })]);
    expect(json(evolve(before, events[2]!))).toBe(json(state));
  });

  it('an answer recorded without its question (older events) shows the task description', () => {
    const events = run([submit(TEXT), (s) => needs(FETCH, dispatch(FETCH, 1, s), 'Which bucket?')]).events;
    const state = fold(events);
    const legacy = stored([{ type: 'ClarificationProvided', data: { taskId: FETCH, answer: 'prod' } }], state.version)[0]!;
    const after = evolve(state, legacy);
    expect(after.snapshot.context.items.at(-1)).toEqual({ id: `answer-${FETCH}`, slot: 'answer', text: 'Q: Fetch the logs.\nA: prod', pinned: true });
  });

  it('folding an event for a task the session never planned fails loudly', () => {
    const events = run([submit(TEXT), (s) => needs(FETCH, dispatch(FETCH, 1, s), 'Which bucket?')]).events;
    const state = fold(events);
    const stray = stored([{ type: 'ClarificationProvided', data: { taskId: 't9-none', answer: 'x', question: 'q' } }], state.version)[0]!;
    expect(() => evolve(state, stray)).toThrow(/t9-none/);
  });

  it('a task snapshot keeps no undefined fields, so JSON restores it exactly', () => {
    for (const state of states) {
      for (const id of state.snapshot.context.order) {
        expect(Object.values(taskSnapshot(state, id)!.context)).not.toContain(undefined);
      }
    }
  });

  it('refuses a serialized state its machines do not know (a cache miss for the repository)', () => {
    const json = JSON.parse(JSON.stringify(serializeState(fold(run([submit(TEXT)]).events)))) as {
      snapshot: { value: unknown; children: Record<string, { value: unknown }> };
    };
    expect(() => restoreState({ ...json, snapshot: { ...json.snapshot, value: { active: 'sleeping' } } })).toThrow(/not a serialized session state/);
    const [id] = Object.keys(json.snapshot.children);
    const children = { ...json.snapshot.children, [id!]: { ...json.snapshot.children[id!], value: 'Dreaming' } };
    expect(() => restoreState({ ...json, snapshot: { ...json.snapshot, children } })).toThrow(/not a serialized session state/);
    expect(() => restoreState({ nope: true })).toThrow(/not a serialized session state/);
  });

  it('refuses a serialized state whose inbox ids and stream sequences do not line up', () => {
    const state = run([[submit(TEXT), { streamSequence: 1 }], [answer(ASK, 'x'), { streamSequence: 2 }]]).state;
    const serialized = JSON.parse(json(state)) as { recentInputs: string[]; recentSequences: number[] };
    expect(serialized.recentInputs).toHaveLength(2);
    expect(() => restoreState({ ...serialized, recentSequences: [1] })).toThrow(/not a serialized session state/);
    expect(() => restoreState({ ...serialized, recentSequences: [1, 2, 3] })).toThrow(/not a serialized session state/);
    expect(restoreState(serialized).recentSequences).toEqual([1, 2]);
  });

  it('a task that was never planned has no snapshot', () => {
    expect(taskSnapshot(states[1]!, 't9-none')).toBeUndefined();
  });
});

describe('inbox window', () => {
  it('remembers the ids of the last INBOX_WINDOW inputs, once each', () => {
    const state = run([submit(TEXT)]).state;
    expect(state.recentInputs).toHaveLength(1); // three events, one input
    const rejections = Array.from({ length: INBOX_WINDOW + 5 }, (_, i) => ({
      ...stored([{ type: 'InputRejected', data: { reason: `r${i}` } }], state.version + i)[0]!,
      causationId: `in-${i}`,
    }));
    const after = rejections.reduce(evolve, state);
    expect(after.recentInputs).toHaveLength(INBOX_WINDOW);
    expect(after.recentInputs[0]).toBe('in-5');
    expect(after.recentInputs.at(-1)).toBe(`in-${INBOX_WINDOW + 4}`);
    // Inside the window a redelivery is dropped; one that fell out of it is processed again.
    const meta = (messageId: string) => metaOf({ messageId });
    expect(decide(after, answer(ASK, 'x'), meta(`in-${INBOX_WINDOW + 4}`), deps).events).toEqual([]);
    expect(decide(after, answer(ASK, 'x'), meta('in-0'), deps).events.map((e) => e.type)).toEqual(['InputRejected']);
  });

  it('keeps each remembered input\'s stream sequence, and the highest of those that left: a fold and evolve agree', () => {
    const state = run([[submit(TEXT), { streamSequence: 1 }]]).state;
    // Sequences with gaps and not in order (a handover can reorder inputs), some without one.
    const n = 2 * INBOX_WINDOW - 1; // the last input makes the fold trim its list
    const seqOf = (i: number) => (i % 7 === 0 ? undefined : 10 + i * 3 + (i % 5 === 0 ? 7 : 0));
    const rejections = Array.from({ length: n }, (_, i) => {
      const event = { ...stored([{ type: 'InputRejected', data: { reason: `r${i}` } }], state.version + i)[0]!, causationId: `in-${i}` };
      const seq = seqOf(i);
      return seq === undefined ? event : { ...event, inputSequence: seq };
    });
    const evolved = rejections.reduce(evolve, state);
    const folded = foldOnto(state, rejections);
    expect(folded.recentInputs).toEqual(evolved.recentInputs);
    expect(folded.recentSequences).toEqual(evolved.recentSequences);
    expect(folded.inputSequenceFloor).toBe(evolved.inputSequenceFloor);
    const left = n + 1 - INBOX_WINDOW; // the submit and the first rejections left the window
    const expectedFloor = Math.max(1, ...Array.from({ length: left - 1 }, (_, i) => seqOf(i) ?? 0));
    expect(evolved.inputSequenceFloor).toBe(expectedFloor);
    expect(evolved.recentSequences).toEqual(Array.from({ length: INBOX_WINDOW }, (_, k) => seqOf(left - 1 + k) ?? 0));
    // The state before the last input, as a fold keeps it for a cut-short decision, is evolve's too.
    const before = rejections.slice(0, -1).reduce(evolve, state);
    const { lastInput: _, ...expectedBefore } = before;
    expect(JSON.stringify(serializeState(folded.lastInput!.before))).toBe(JSON.stringify(serializeState(expectedBefore as typeof before)));
    expect(restoreState(JSON.parse(JSON.stringify(serializeState(folded))))).toMatchObject({
      recentSequences: evolved.recentSequences,
      inputSequenceFloor: evolved.inputSequenceFloor,
    });
  });

  it('names the copy as the last input once one is recorded (its own stream sequence): step, evolve and a fold agree', () => {
    const initial = initialSessionState(SESSION);
    const original = decide(initial, submit(TEXT), { messageId: 'first', now: T0, streamSequence: 1 }, deps);
    const copy = decide(original.state, submit(TEXT), { messageId: 'first', now: T0 + 5, streamSequence: 2 }, deps);
    expect(copy.events.map((e) => e.type)).toEqual(['InputRepeated']);
    const events = [...original.events, ...copy.events];
    for (const [how, state] of [['step', copy.state], ['evolve', events.reduce(evolve, initial)], ['fold', foldOnto(initial, events)]] as const) {
      expect(state.lastInput, how).toMatchObject({ messageId: 'first', inputSequence: 2, now: T0 + 5 });
      expect(json(state.lastInput!.before), how).toBe(json(original.state));
    }
  });
});

describe('session queries', () => {
  const states = statesAlong(STEPS);

  it('outstanding: what a reloaded session waits on', () => {
    expect(outstanding(states[0]!)).toEqual({});
    expect(outstanding(states[1]!)).toEqual({
      command: expect.objectContaining({ type: 'ExecuteTask', taskId: FETCH, dispatchId: dispatch(FETCH, 1, states[1]!), attempt: 1 }),
    });
    expect(outstanding(states[2]!)).toEqual({
      command: { type: 'RequestClarification', sessionId: SESSION, taskId: FETCH, question: 'Which bucket?' },
    });
    expect(outstanding(states[4]!)).toEqual({ retry: { taskId: FETCH, attempt: 3, dueAt: expect.any(Number) } });
    expect(outstanding(states[6]!)).toEqual({
      command: { type: 'RequestClarification', sessionId: SESSION, taskId: ASK, question: 'Which region should we deploy to?' },
    });
    expect(outstanding(states[8]!)).toEqual({});
    // Planned, not waiting for a retry: nothing outstanding (the next input dispatches it).
    const planned = fold(run([submit(TEXT)]).events.slice(0, 2));
    expect(outstanding(planned)).toEqual({});
    // Active with no task at the cursor (a plan event not yet appended).
    const started = fold(run([submit(TEXT)]).events.slice(0, 1));
    expect(outstanding(started)).toEqual({});
    expect(currentTask(started)).toBeUndefined();
  });

  it('toPlannerState: the read model', () => {
    const backoff = toPlannerState(states[4]!);
    expect(backoff).toMatchObject({
      sessionId: SESSION,
      status: 'active',
      phase: 'backoff',
      cursor: 0,
      waiting: { clarification: null, retry: { taskId: FETCH, dueAt: expect.any(Number) } },
      version: states[4]!.version,
    });
    expect(backoff.tasks.map((t) => t.status)).toEqual(['Planned', 'Planned', 'Planned']);
    expect(backoff.tasks[0]).toMatchObject({ attempts: 2, error: 'timeout', answer: 'the prod bucket', question: 'Which bucket?' });
    expect(toPlannerState(states[2]!).waiting).toEqual({ clarification: FETCH, retry: null });
    const done = toPlannerState(states[8]!);
    expect(done).toMatchObject({ status: 'completed', phase: 'done', cursor: 3 });
    expect(done.tasks.map((t) => t.status)).toEqual(['Completed', 'Completed', 'Completed']);
    expect(done.context.summary).toBe('');
    expect(done.context.items.map((i) => i.slot)).toEqual(['system', 'input', 'answer', 'result', 'answer', 'result']);
  });
});
