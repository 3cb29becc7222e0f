/**
 * Property tests of the decider and the fold: random sessions (texts from a small vocabulary with
 * questions, tool calls and flaky steps; reports with right, stale, wrong and duplicate dispatch
 * ids; answers; failures; retry timers at random times; cancels; redelivered message ids; invalid
 * inputs) are driven through decide, and after every event the state rebuilt from the log — from
 * scratch, and from a JSON snapshot taken at a random earlier point plus the tail — must equal the
 * live state, byte for byte once serialized. The compiled machines agree with xstate's own
 * transition (the reference) on every event: state, task actors and commands.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decide, isAtRest, type PlannerInput } from '../../src/machines/decide.js';
import { evolve, fold, initialSessionState, restoreState, serializeState, step as stepOf, type SessionState } from '../../src/machines/sessionState.js';
import { toPersistedSnapshot } from '../../src/machines/xstateSnapshot.js';
import { referenceInitial, referencePersisted, referenceStep } from '../support/xstateReference.js';
import { currentTask, dispatchIdFor, statusOf, taskView } from '../../src/machines/sessionQueries.js';
import { PlannerCommand } from '../../src/protocol/commands.js';
import { PlannerConfig } from '../../src/protocol/domain.js';
import { DomainEvent, EVENT_SCHEMA_VERSION, EVENT_TYPES } from '../../src/protocol/events.js';
import type { InputMeta } from '../../src/protocol/inputs.js';
import { deps } from './deciderSpecification.js';

const SID = 's1';
const VOCABULARY = [
  'Fetch the logs from https://ci.example.com/run/7.',
  'Deploy the app to staging.',
  'Which region should we deploy to?',
  'Run the flaky integration tests.',
  'Summarize the flaky failures.',
  'Ask the user about the budget.',
  'Retry the flaky deploy.',
  'Is the database migrated?',
  '   ',
  '# Only a heading',
];

type Which = 'current' | 'stale' | 'unknownDispatch' | 'unknownTask' | 'lastIssued';
type Action =
  | { kind: 'submit'; texts: number[]; config: boolean }
  | { kind: 'complete'; which: Which; long: boolean }
  | { kind: 'fail'; which: Which; retryable: boolean | undefined }
  | { kind: 'needs'; which: Which }
  | { kind: 'answer'; current: boolean }
  | { kind: 'retryDue'; wait: number }
  | { kind: 'cancel' }
  | { kind: 'invalid' }
  | { kind: 'redeliver'; back: number; copy: boolean };

const which = fc.constantFrom<Which>('current', 'current', 'current', 'stale', 'unknownDispatch', 'unknownTask', 'lastIssued');
const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('submit' as const), texts: fc.array(fc.nat(VOCABULARY.length - 1), { minLength: 1, maxLength: 3 }), config: fc.boolean() }) },
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('complete' as const), which, long: fc.boolean() }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('fail' as const), which, retryable: fc.option(fc.boolean(), { nil: undefined }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('needs' as const), which }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('answer' as const), current: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('retryDue' as const), wait: fc.integer({ min: 0, max: 2_000 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('cancel' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('invalid' as const) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('redeliver' as const), back: fc.nat(5), copy: fc.boolean() }) },
);

/** SessionStarted as jetplan wrote it before run ids: its session keeps the old dispatch ids. */
const LEGACY_START = DomainEvent.parse({
  id: 'old-start/1',
  type: 'SessionStarted',
  version: EVENT_SCHEMA_VERSION,
  sessionId: SID,
  sequence: 1,
  timestamp: 900_000,
  causationId: 'old-start',
  correlationId: SID,
  data: { config: PlannerConfig.parse({}) },
});

/** The run id in a log's SessionStarted, or null (none yet, or a session from before run ids). */
const runIdIn = (log: readonly DomainEvent[]): string | null => {
  const started = log.find((e) => e.type === 'SessionStarted');
  return started?.type === 'SessionStarted' ? (started.data.runId ?? null) : null;
};

const LONG = Array.from({ length: 60 }, (_, i) => `Step ${i} of the flaky deploy printed warning W${(i * 31) % 97}.`).join(' ');
const json = (s: SessionState): string => JSON.stringify(serializeState(s));

/** A dispatch the session issued (dispatch ids are opaque: the task id is not parsed out of one). */
interface Issued {
  taskId: string;
  dispatchId: string;
}

interface Sent {
  input: PlannerInput;
  meta: InputMeta;
}

/** Turns an abstract action into a concrete input, against the current state. */
function concretize(a: Action, state: SessionState, issued: Issued[], sent: Sent[], now: number, n: number): Sent {
  const meta: InputMeta = { messageId: `m${n}`, now, streamSequence: n + 1 };
  const task = currentTask(state);
  const ids = state.snapshot.context.order;
  const { runId } = state.snapshot.context;
  const dispatchOf = (w: Which): { taskId: string; dispatchId: string } => {
    const taskId = w === 'unknownTask' ? 't99-none' : (task?.id ?? ids[0] ?? 't1-none');
    const attempts = task?.attempts ?? 0;
    switch (w) {
      case 'current':
        return { taskId, dispatchId: task?.dispatchId ?? dispatchIdFor(SID, taskId, Math.max(1, attempts), runId) };
      case 'stale':
        return { taskId, dispatchId: dispatchIdFor(SID, taskId, Math.max(1, attempts - 1), runId) };
      case 'unknownDispatch':
        return { taskId, dispatchId: dispatchIdFor(SID, taskId, attempts + 5, runId) };
      case 'unknownTask':
        return { taskId, dispatchId: 'x.y.1' };
      case 'lastIssued':
        return issued.at(-1) ?? { taskId: 't1-none', dispatchId: 's1.t1-none.1' };
    }
  };
  switch (a.kind) {
    case 'submit':
      return {
        meta,
        input: {
          type: 'SubmitInput',
          text: a.texts.map((i) => VOCABULARY[i]).join(' '),
          ...(a.config ? { config: { maxAttempts: 2, tokenBudget: 256, backoff: { baseMs: 100, factor: 3, maxMs: 1_000 } } } : {}),
        },
      };
    case 'complete':
      return { meta, input: { type: 'TaskCompleted', ...dispatchOf(a.which), output: a.long ? LONG : 'done' } };
    case 'fail':
      return {
        meta,
        input: { type: 'TaskFailed', ...dispatchOf(a.which), error: 'flaky', ...(a.retryable === undefined ? {} : { retryable: a.retryable }) },
      };
    case 'needs':
      return { meta, input: { type: 'NeedsClarification', ...dispatchOf(a.which), question: 'Which bucket?' } };
    case 'answer':
      return { meta, input: { type: 'ProvideClarification', taskId: a.current ? (task?.id ?? 't1-none') : (ids[0] ?? 't1-none'), answer: 'eu-west-1' } };
    case 'retryDue':
      return { meta: { ...meta, now: now + a.wait }, input: { type: 'RetryDue', taskId: task?.id ?? 't1-none', attempt: (task?.attempts ?? 0) + 1 } };
    case 'cancel':
      return { meta, input: { type: 'CancelSession' } };
    case 'invalid':
      return { meta, input: { type: 'InvalidInput', reason: 'not JSON', inputType: 'TaskCompleted' } };
    case 'redeliver': {
      // The same message again, or a copy the broker stored anew (republished after its duplicate window).
      const earlier = sent[Math.max(0, sent.length - 1 - a.back)];
      const streamSequence = a.copy ? meta.streamSequence : earlier?.meta.streamSequence;
      return earlier ? { ...earlier, meta: { ...earlier.meta, now, streamSequence } } : { meta, input: { type: 'CancelSession' } };
    }
  }
}

describe('replay (property)', () => {
  it('a fold of the log, from scratch or from a snapshot, is the live state; decide is deterministic', () => {
    const seen = new Map<string, number>();
    const dispatchedIn = new Set<string>();
    fc.assert(
      fc.property(
        // Every session opens with a usable submission, so the rest of the inputs have work to act on.
        fc.record({ kind: fc.constant('submit' as const), texts: fc.array(fc.nat(7), { minLength: 1, maxLength: 3 }), config: fc.boolean() }),
        fc.array(action, { minLength: 1, maxLength: 18 }),
        fc.array(fc.nat(), { minLength: 64, maxLength: 64 }),
        fc.integer({ min: 0, max: 3_000 }),
        // A session an older jetplan started (no run id), continued by this one.
        fc.boolean(),
        (first, rest, cuts, step, legacy) => {
          const actions: Action[] = [first, ...rest];
          let live = initialSessionState(SID);
          const log: DomainEvent[] = [];
          const folded: string[] = [json(live)]; // serialized state after each event
          const foldedStates: SessionState[] = [live];
          const issued: Issued[] = [];
          const sent: Sent[] = [];
          let reference = referenceInitial(SID);
          if (legacy) {
            log.push(LEGACY_START);
            live = evolve(live, LEGACY_START);
            expect(live.snapshot.context.runId).toBeNull();
            folded.push(json(live));
            foldedStates.push(live);
            reference = referenceStep(reference, LEGACY_START).snapshot;
          }
          let now = 1_000_000;
          actions.forEach((a, n) => {
            now += step;
            const { input, meta } = concretize(a, live, issued, sent, now, n);
            sent.push({ input, meta });
            const decision = decide(live, input, meta, deps);
            // Deterministic: the same state, input and meta give the same decision.
            const again = decide(live, input, meta, deps);
            expect(again.events).toEqual(decision.events);
            expect(again.commands).toEqual(decision.commands);
            // A whole decision leaves its session at rest (a new leader tells a cut one by this).
            expect(isAtRest(decision.state, meta.now, deps)).toBe(true);
            for (const event of decision.events) {
              expect(DomainEvent.parse(event)).toEqual(event);
              log.push(event);
              // Sequences are contiguous.
              expect(event.sequence).toBe(log.length);
              if (event.type === 'TaskDispatched') {
                expect(issued.map((i) => i.dispatchId)).not.toContain(event.data.dispatchId); // never issued twice
                // In the session's run: with its run id, or in the old form in a session started without one.
                expect(event.data.dispatchId).toBe(dispatchIdFor(SID, event.data.taskId, event.data.attempt, runIdIn(log)));
                issued.push({ taskId: event.data.taskId, dispatchId: event.data.dispatchId });
              }
              const { state, commands } = stepOf(foldedStates.at(-1)!, event);
              const ref = referenceStep(reference, event);
              reference = ref.snapshot;
              expect(toPersistedSnapshot(state.snapshot)).toEqual(referencePersisted(reference));
              expect(commands).toEqual(ref.commands);
              foldedStates.push(state);
              folded.push(json(state));
              // At most one task runs at a time.
              const running = state.snapshot.context.order.filter((id) => taskView(state, id)!.status === 'Running');
              expect(running.length).toBeLessThanOrEqual(1);
              // Snapshot (through JSON) at a random earlier point, plus the tail, is the same state.
              const k = log.length;
              const j = cuts[k % cuts.length]! % k;
              const restored = restoreState(JSON.parse(folded[j]!));
              const resumed = log.slice(j, k).reduce(evolve, restored);
              expect(json(resumed)).toBe(folded[k]);
              expect(json(fold(restored, log.slice(j, k)))).toBe(folded[k]);
            }
            for (const command of decision.commands) expect(PlannerCommand.parse(command)).toEqual(command);
            // The live state is the fold of the log from scratch.
            const rebuilt = log.reduce(evolve, initialSessionState(SID));
            expect(json(rebuilt)).toBe(json(decision.state));
            expect(json(fold(initialSessionState(SID), log))).toBe(json(decision.state));
            expect(json(decision.state)).toBe(folded.at(-1));
            live = decision.state;
          });
          // A terminal session got there through its terminal event, and nothing follows it but
          // rejections and ignored reports.
          const status = statusOf(live);
          const terminal = { completed: 'SessionCompleted', failed: 'SessionFailed', cancelled: 'SessionCancelled' } as const;
          if (status in terminal) {
            const at = log.findIndex((e) => e.type === terminal[status as keyof typeof terminal]);
            expect(at).toBeGreaterThanOrEqual(0);
            expect(log.slice(at + 1).every((e) => e.type === 'InputRejected' || e.type === 'ReportIgnored')).toBe(true);
          }
          for (const e of log) seen.set(e.type, (seen.get(e.type) ?? 0) + 1);
          if (issued.length > 0) dispatchedIn.add(legacy ? 'without a run id' : 'with a run id');
        },
      ),
      { numRuns: Number(process.env.REPLAY_RUNS ?? 150) },
    );
    if (process.env.REPLAY_STATS) console.log(JSON.stringify([...seen].sort((a, b) => a[1] - b[1])));
    // The generator reaches every kind of event (so the properties above are not vacuous).
    expect([...seen.keys()].sort()).toEqual([...EVENT_TYPES].sort());
    expect([...dispatchedIn].sort()).toEqual(['with a run id', 'without a run id']);
  });
});
