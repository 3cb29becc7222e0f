/**
 * The fresh check's shortcut against the rebuild it stands in for: on random sessions driven
 * through the real decider (reports right and late, failures, retries, questions and answers,
 * inputs while a task runs, cancels, invalid and repeated inputs, and decisions whose append was
 * cut short), at every length of the log and for every dispatch issued so far (and one never
 * issued), the verdict `tipVerdict` draws from the latest event, whenever it draws one, is exactly
 * the verdict of the session rebuilt from the whole log. The end events skip from any state at
 * all, however the log was written.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decide, type PlannerInput } from '../../src/machines/decide.js';
import { currentTask, dispatchIdFor } from '../../src/machines/sessionQueries.js';
import { evolve, initialSessionState, type SessionState } from '../../src/machines/sessionState.js';
import { tipVerdict, verdictOf, type StaleVerdict } from '../../src/nats/executorStale.js';
import type { ExecuteTask } from '../../src/protocol/commands.js';
import { EVENT_SCHEMA_VERSION, type DomainEvent } from '../../src/protocol/events.js';
import type { InputMeta } from '../../src/protocol/inputs.js';
import { deps } from '../machines/deciderSpecification.js';
import { executeTask } from '../support/executeTask.js';

const SID = 's1';
const TEXTS = [
  'Fetch https://example.com/a.csv.',
  'Summarise the results.',
  'Which region should we deploy to?',
  'Run `make test`. Write the report.',
  'Nothing to plan: ',
];

type Action =
  | { kind: 'submit'; text: number }
  | { kind: 'complete' | 'needs' | 'late' | 'answer' | 'cancel' | 'invalid' | 'copy' }
  | { kind: 'fail'; retryable: boolean }
  | { kind: 'retryDue'; wait: number };

const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('submit' as const), text: fc.nat(TEXTS.length - 1) }) },
  { weight: 6, arbitrary: fc.record({ kind: fc.constantFrom('complete' as const, 'needs' as const, 'late' as const, 'answer' as const) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('fail' as const), retryable: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('retryDue' as const), wait: fc.constantFrom(0, 100, 5_000, 60_000) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constantFrom('cancel' as const, 'invalid' as const, 'copy' as const) }) },
);

/** A dispatch issued (its id is opaque: the task id is not parsed out of it). */
interface Issued {
  taskId: string;
  dispatchId: string;
}

interface Sent {
  input: PlannerInput;
  meta: InputMeta;
}

/** The input `a` stands for in `state`; `issued` are the dispatches issued so far, `sent` the inputs. */
function inputFor(a: Action, state: SessionState, issued: readonly Issued[], sent: readonly Sent[], meta: InputMeta): Sent {
  const task = currentTask(state);
  const taskId = task?.id ?? 't1';
  const dispatchId = task?.dispatchId ?? dispatchIdFor(SID, taskId, 1, state.snapshot.context.runId);
  switch (a.kind) {
    case 'submit':
      return { meta, input: { type: 'SubmitInput', text: TEXTS[a.text]!, config: { maxAttempts: 2 } } };
    case 'complete':
      return { meta, input: { type: 'TaskCompleted', taskId, dispatchId, output: 'ok' } };
    case 'needs':
      return { meta, input: { type: 'NeedsClarification', taskId, dispatchId, question: 'Which bucket?' } };
    case 'late': {
      const late = issued[0] ?? { taskId, dispatchId }; // the first dispatch ever: a duplicate or late report
      return { meta, input: { type: 'TaskCompleted', ...late, output: 'late' } };
    }
    case 'answer':
      return { meta, input: { type: 'ProvideClarification', taskId, answer: 'eu-west-1' } };
    case 'cancel':
      return { meta, input: { type: 'CancelSession' } };
    case 'invalid':
      return { meta, input: { type: 'InvalidInput', reason: 'not JSON' } };
    case 'copy': {
      // The last input stored again under a new stream sequence: an InputRepeated, or nothing.
      const last = sent.at(-1);
      return last ? { input: last.input, meta: { ...last.meta, now: meta.now, streamSequence: meta.streamSequence } } : { meta, input: { type: 'CancelSession' } };
    }
    case 'fail':
      return { meta, input: { type: 'TaskFailed', taskId, dispatchId, error: 'HTTP 503', retryable: a.retryable } };
    case 'retryDue': {
      const dueAt = task?.retryAt ?? meta.now;
      return { meta: { ...meta, now: dueAt + a.wait - 1_000 }, input: { type: 'RetryDue', taskId, attempt: (task?.attempts ?? 0) + 1 } };
    }
  }
}

/**
 * A log written as the planner writes it: each input decided on the state folded from the log so
 * far, its events appended whole, or (`cuts`) only a first part of them, as an append cut short by
 * a crash on a store without atomic multi-event appends leaves it.
 */
function writeLog(actions: readonly Action[], cuts: readonly number[]): DomainEvent[] {
  const log: DomainEvent[] = [];
  const sent: Sent[] = [];
  let state = initialSessionState(SID);
  let now = 1_000_000;
  actions.forEach((a, n) => {
    now += 1_000;
    const issued = log.flatMap((e) => (e.type === 'TaskDispatched' ? [{ taskId: e.data.taskId, dispatchId: e.data.dispatchId }] : []));
    const { input, meta } = inputFor(a, state, issued, sent, { messageId: `m${n}`, now, streamSequence: n + 1 });
    sent.push({ input, meta });
    const { events } = decide(state, input, meta, deps);
    const cut = cuts[n % cuts.length]!;
    const kept = cut > 0 && events.length > 1 ? events.slice(0, 1 + (cut % (events.length - 1))) : events;
    for (const event of kept) {
      log.push(event);
      state = evolve(state, event);
    }
  });
  return log;
}

/** The commands a check may be given at this point of the log: every dispatch issued, and one never issued. */
const commandsOf = (log: readonly DomainEvent[]): ExecuteTask[] => [
  ...log.flatMap((e) => (e.type === 'TaskDispatched' ? [executeTask({ sessionId: SID, taskId: e.data.taskId, dispatchId: e.data.dispatchId })] : [])),
  executeTask({ sessionId: SID, taskId: 't1', dispatchId: dispatchIdFor(SID, 't1', 9) }),
];

/** An end event of type `type` that would follow `state`'s last event. */
function endAfter(state: SessionState, type: 'SessionCompleted' | 'SessionFailed' | 'SessionCancelled'): DomainEvent {
  const data = type === 'SessionCompleted' ? { tasks: 1 } : { reason: 'end' };
  const sequence = state.version + 1;
  return { id: `end/${sequence}`, type, version: EVENT_SCHEMA_VERSION, sessionId: SID, sequence, timestamp: 0, causationId: 'end', correlationId: SID, data } as DomainEvent;
}

const key = (v: StaleVerdict): string => `${v.action} ${v.reason}`;

describe('the fresh check decided from the latest event', () => {
  it('draws no verdict from the latest event that a rebuild of the whole log would not', () => {
    const drawn = new Map<string, number>();
    let undrawn = 0;
    fc.assert(
      fc.property(
        fc.record({ kind: fc.constant('submit' as const), text: fc.nat(3) }),
        fc.array(action, { minLength: 1, maxLength: 16 }),
        fc.array(fc.nat(6), { minLength: 8, maxLength: 8 }),
        (first, rest, cuts) => {
          const log = writeLog([first, ...rest], cuts);
          let state = initialSessionState(SID);
          log.forEach((tip, i) => {
            state = evolve(state, tip);
            for (const task of commandsOf(log.slice(0, i + 1))) {
              const drawnFromTip = tipVerdict(tip, task);
              if (drawnFromTip === undefined) {
                undrawn++;
                continue;
              }
              expect(drawnFromTip, `${tip.type} at ${tip.sequence}, ${task.dispatchId}`).toEqual(verdictOf(state, task));
              drawn.set(key(drawnFromTip), (drawn.get(key(drawnFromTip)) ?? 0) + 1);
            }
          });
        },
      ),
      { numRuns: Number(process.env.STALE_TIP_RUNS ?? 200) },
    );
    // Every verdict the latest event can give was drawn (so the property is not vacuous), and
    // some latest events gave none (the log is read then).
    expect([...drawn.keys()].sort()).toEqual(['run outstanding', 'skip cancelled', 'skip completed', 'skip failed', 'skip superseded']);
    expect(undrawn).toBeGreaterThan(0);
  });

  it('skips after an end event whatever state it follows, however the log was written', () => {
    fc.assert(
      fc.property(fc.array(action, { minLength: 0, maxLength: 12 }), fc.array(fc.nat(6), { minLength: 8, maxLength: 8 }), (actions, cuts) => {
        const log = writeLog(actions, cuts);
        let state = initialSessionState(SID);
        for (const event of [undefined, ...log]) {
          if (event) state = evolve(state, event);
          for (const type of ['SessionCompleted', 'SessionFailed', 'SessionCancelled'] as const) {
            const ended = evolve(state, endAfter(state, type));
            for (const task of commandsOf(log)) expect(verdictOf(ended, task).action).toBe('skip');
          }
        }
      }),
      { numRuns: 100 },
    );
  });
});
