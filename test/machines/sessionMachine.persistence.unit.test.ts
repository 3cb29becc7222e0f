import { createActor } from 'xstate';
import { describe, expect, it } from 'vitest';
import { decide } from '../../src/machines/decide.js';
import { sessionMachine } from '../../src/machines/sessionMachine.js';
import { initialSessionState, restoreState, serializeState, taskSnapshot } from '../../src/machines/sessionState.js';
import { toPersistedSnapshot } from '../../src/machines/xstateSnapshot.js';
import type { DomainEvent } from '../../src/protocol/events.js';
import { answer, completed, deps, dispatch, fold, metaOf, needs, run, SESSION, submit, taskIds } from './deciderSpecification.js';

const TEXT = 'Fetch the logs. Which region should we deploy to? Summarize the flaky tests.';
const [FETCH, ASK] = taskIds(TEXT) as [string, string, string];
const MORE = 'Archive the logs.';

/** A session that plans twice (so TasksPlanned meets a restored plan) and answers a question. */
const EVENTS: DomainEvent[] = run([
  submit(TEXT),
  (s) => needs(FETCH, dispatch(FETCH, 1, s), 'Which bucket?'),
  answer(FETCH, 'the prod bucket'),
  submit(MORE),
  (s) => completed(FETCH, dispatch(FETCH, 2, s), 'logs'),
  answer(ASK, 'eu-west-1'),
]).events;

/** Plain JSON data, so records compare whatever order their keys came in. */
const data = (value: unknown): unknown => JSON.parse(JSON.stringify(value));

describe('the session machine under xstate persistence', () => {
  it("continues from its own persisted snapshot after a JSON round trip (the plan comes back a record)", () => {
    for (let cut = 1; cut < EVENTS.length; cut++) {
      const first = createActor(sessionMachine, { input: { sessionId: SESSION } }).start();
      for (const event of EVENTS.slice(0, cut)) first.send(event);
      const persisted = data(sessionMachine.getPersistedSnapshot(first.getSnapshot()));
      first.stop();

      const resumed = createActor(sessionMachine, { snapshot: persisted as never, input: { sessionId: SESSION } }).start();
      for (const event of EVENTS.slice(cut)) resumed.send(event);
      expect(resumed.getSnapshot().status).toBe('active');
      expect(data(sessionMachine.getPersistedSnapshot(resumed.getSnapshot()))).toEqual(
        data(toPersistedSnapshot(fold(EVENTS).snapshot)),
      );
      resumed.stop();
    }
  });
});

describe('a task whose id is "__proto__"', () => {
  it('stays a task through serializeState/restoreState and the xstate snapshot form', () => {
    const odd = { ...deps, plan: () => [{ id: '__proto__', description: 'Process it.', kind: 'Processing' as const, attachments: [] }] };
    const planned = decide(initialSessionState(SESSION), { type: 'SubmitInput', text: 'x' }, metaOf(), odd);
    expect(taskSnapshot(planned.state, '__proto__')?.value).toBe('Running');

    const restored = restoreState(data(serializeState(planned.state)));
    expect(taskSnapshot(restored, '__proto__')?.value).toBe('Running');
    expect(restored.snapshot.context.plan.get('__proto__')?.description).toBe('Process it.');
    expect(Object.keys((data(toPersistedSnapshot(planned.state.snapshot)) as { children: object }).children)).toEqual(['__proto__']);
  });
});
