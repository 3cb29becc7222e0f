import { describe, expect, it } from 'vitest';
import { decide, isAtRest, type PlannerInput } from '../../src/machines/decide.js';
import { statusOf } from '../../src/machines/sessionQueries.js';
import { fold as foldOnto, initialSessionState, restoreState, serializeState, type SessionState } from '../../src/machines/sessionState.js';
import type { InputMeta } from '../../src/protocol/inputs.js';
import { completed, deps, dispatch, failed, metaOf, run, SESSION, submit, T0, taskIds } from './deciderSpecification.js';

// An append of several events can be cut short on JetStream (no atomic batch on nats-server 2.9):
// the first events of a decision land, the rest do not, and the input comes back.

const TEXT = 'Fetch the logs. Summarize the flaky tests.';
const [FETCH] = taskIds(TEXT) as [string, string];
const json = (state: SessionState) => JSON.stringify(serializeState(state));

/** A decision of more than one event on top of `before`, with the meta it was made with. */
function decision(before: SessionState, input: PlannerInput, meta: InputMeta) {
  const d = decide(before, input, meta, deps);
  expect(d.events.length).toBeGreaterThan(1);
  return d;
}

describe('a decision whose append was cut short', () => {
  const start = initialSessionState(SESSION);
  const started = run([submit(TEXT)]).state;
  const cases: [string, SessionState, PlannerInput][] = [
    ['a first SubmitInput (SessionStarted, TasksPlanned, TaskDispatched)', start, submit(TEXT)],
    ['a final failure (TaskFailed, then the session fails)', started, failed(FETCH, dispatch(FETCH, 1, started), 'boom', false)],
    ['a retryable failure (TaskFailed, TaskRetryScheduled)', started, failed(FETCH, dispatch(FETCH, 1, started), 'flaky', true)],
    ['a completion (TaskCompleted, the next TaskDispatched)', started, completed(FETCH, dispatch(FETCH, 1, started))],
  ];

  for (const [name, before, input] of cases) {
    it(`is finished by the redelivered input, at every cut: ${name}`, () => {
      const meta = metaOf({ now: T0 + 5_000, streamSequence: 7 });
      const whole = decision(before, input, meta);
      for (let landed = 1; landed < whole.events.length; landed++) {
        // Loaded as the service loads it: whatever state it had, then a fold of the landed tail.
        const loaded = foldOnto(before, whole.events.slice(0, landed));
        // A new leader tells the cut from a whole decision: the session does not rest.
        expect(isAtRest(loaded, meta.now, deps)).toBe(false);
        // Redelivered later (another `now`, the same message id): finished as it was begun.
        const again = decide(loaded, input, { ...meta, now: meta.now + 60_000 }, deps);
        expect(again.events).toEqual(whole.events.slice(landed));
        expect(json(again.state)).toBe(json(whole.state));
        expect(again.commands).toEqual(whole.commands);
        // Published again by its client after the duplicate window (a new stream sequence): finished
        // alike, then the copy is recorded, so that it stays a repeat once its id leaves the window.
        // (An ended session needs no record: it rejects every input.)
        const copy = decide(loaded, input, { ...meta, now: meta.now + 60_000, streamSequence: 9 }, deps);
        const open = ['idle', 'active'].includes(statusOf(whole.state));
        expect(copy.events.slice(0, whole.events.length - landed)).toEqual(whole.events.slice(landed));
        expect(copy.events.slice(whole.events.length - landed)).toMatchObject(
          open ? [{ type: 'InputRepeated', inputSequence: 9, data: { streamSequence: 9, appliedSequence: 7 } }] : [],
        );
        expect(copy.commands).toEqual(whole.commands);
        expect(copy.state.recentSequences.includes(9)).toBe(open);
      }
    });
  }

  it('a whole decision redelivered changes nothing, as before', () => {
    const meta = metaOf();
    const whole = decision(started, completed(FETCH, dispatch(FETCH, 1, started)), meta);
    const loaded = foldOnto(started, whole.events);
    expect(isAtRest(loaded, meta.now, deps)).toBe(true);
    const again = decide(loaded, completed(FETCH, dispatch(FETCH, 1, started)), { ...meta, now: meta.now + 1 }, deps);
    expect(again.events).toEqual([]);
  });

  it('only the input whose events end the log is finished; an earlier one is a plain duplicate', () => {
    const meta = metaOf();
    const whole = decision(start, submit(TEXT), meta);
    const cut = foldOnto(start, whole.events.slice(0, 1));
    // Another input landed after the cut one (it cannot in the service, which keeps per-session
    // order, but the decider must not guess): the earlier input is then not repaired.
    const later = decide(cut, { type: 'CancelSession', reason: 'changed my mind' }, metaOf(), deps);
    const after = foldOnto(cut, later.events);
    expect(decide(after, submit(TEXT), { ...meta, now: meta.now + 1 }, deps).events.map((e) => e.type)).not.toContain('TasksPlanned');
  });

  it('a state restored from a snapshot knows no last input: a redelivery there is a plain duplicate', () => {
    const meta = metaOf();
    const whole = decision(start, submit(TEXT), meta);
    const restored = restoreState(JSON.parse(JSON.stringify(serializeState(foldOnto(start, whole.events.slice(0, 1))))));
    expect(restored.lastInput).toBeUndefined();
    const again = decide(restored, submit(TEXT), meta, deps);
    expect(again.events.map((e) => e.type)).not.toContain('TasksPlanned');
  });

  it('step by step (evolve) and in one fold the last input is tracked alike', () => {
    const meta = metaOf();
    const whole = decision(started, completed(FETCH, dispatch(FETCH, 1, started)), meta);
    const folded = foldOnto(started, whole.events.slice(0, 1));
    const stepped = decide(started, completed(FETCH, dispatch(FETCH, 1, started)), meta, deps).state;
    expect(folded.lastInput?.messageId).toBe(meta.messageId);
    expect(stepped.lastInput?.messageId).toBe(meta.messageId);
    expect(json(folded.lastInput!.before)).toBe(json(started));
    expect(json(stepped.lastInput!.before)).toBe(json(started));
    expect(folded.lastInput!.before.lastInput).toBeUndefined();
  });
});
