/**
 * Given/when/then specifications for the decider, in the style of emmett's DeciderSpecification:
 *
 *   given(events).when(input, meta?).then(expectedEvents)
 *   given(events).when(input).thenRejects('reason substring')
 *   given(events).when(input).thenNothing()
 *
 * `given` takes stored events (full envelopes) or bare `{ type, data }` payloads, which get
 * contiguous sequences. `then` compares event types and data (vitest asymmetric matchers work in
 * `data`) and checks every new envelope: contiguous sequence after the given events, the session
 * id, `id = messageId/sequence`, causation, correlation, timestamp and input sequence from the input's meta.
 */
import { expect } from 'vitest';
import { bpeTokenCounter, createRelevanceCompactor } from '../../src/compaction/index.js';
import { decide, type DecideDeps, type Decision, type PlannerInput } from '../../src/machines/decide.js';
import { dispatchIdFor } from '../../src/machines/sessionQueries.js';
import { evolve, initialSessionState, type SessionState } from '../../src/machines/sessionState.js';
import { planText } from '../../src/planning/index.js';
import { EVENT_SCHEMA_VERSION, DomainEvent, type EventOf, type EventType } from '../../src/protocol/events.js';
import type { InputMeta, SessionInput } from '../../src/protocol/inputs.js';

export const SESSION = 's1';
export const T0 = 1_000_000;

/** The real planner and the real compactor: specifications exercise production behaviour. */
export const deps: DecideDeps = {
  plan: (text, startIndex) => planText(text, { startIndex }),
  compactor: createRelevanceCompactor(),
  countTokens: (text) => bpeTokenCounter.count(text),
};

/** A type and its matching data, e.g. `{ type: 'SessionCompleted', data: { tasks: 2 } }`. */
export type EventPayload = { [T in EventType]: { type: T; data: EventOf<T>['data'] } }[EventType];

let counter = 0;
/** A fresh input message id. */
export const nextMessageId = (): string => `m${++counter}`;

/** Meta for an input: a fresh message id and `T0` unless overridden. */
export const metaOf = (meta: Partial<InputMeta> = {}): InputMeta => ({ messageId: nextMessageId(), now: T0, ...meta });

/** Turns payloads into stored events with contiguous sequences after `version`. */
export function stored(payloads: ReadonlyArray<DomainEvent | EventPayload>, version = 0, sessionId = SESSION): DomainEvent[] {
  return payloads.map((p, i) => {
    const sequence = version + i + 1;
    if ('sequence' in p) return { ...p, sequence } as DomainEvent;
    return DomainEvent.parse({
      id: `given/${sequence}`,
      version: EVENT_SCHEMA_VERSION,
      sessionId,
      sequence,
      timestamp: T0,
      causationId: `given-${sequence}`,
      correlationId: sessionId,
      ...p,
    });
  });
}

/** Folds events into a session state, as loading a stream does. */
export const fold = (events: readonly DomainEvent[], sessionId = SESSION): SessionState =>
  events.reduce(evolve, initialSessionState(sessionId));

/** An input with the meta to send it with. */
export type Input = PlannerInput | [PlannerInput, Partial<InputMeta>];
/**
 * A step of {@link run}: an input, or a function of the state so far that gives one (for a report,
 * whose dispatch id carries the run id that the session's start drew).
 */
export type Step = Input | ((state: SessionState) => Input);

/** Runs inputs through decide in order; the events of all of them, the final state, all commands. */
export function run(steps: readonly Step[], from: SessionState = initialSessionState(SESSION)): Decision {
  let state = from;
  const events: DomainEvent[] = [];
  const commands: Decision['commands'] = [];
  for (const step of steps) {
    const s = typeof step === 'function' ? step(state) : step;
    const [input, meta] = Array.isArray(s) ? s : [s, {}];
    const d = decide(state, input, metaOf(meta), deps);
    state = d.state;
    events.push(...d.events);
    commands.push(...d.commands);
  }
  return { events, state, commands };
}

/** The events a sequence of inputs produces, for use as `given(history(...))`. */
export const history = (...steps: Step[]): DomainEvent[] => run(steps).events;

export interface Then {
  /** The decision under test, for further checks (commands, state). */
  readonly decision: Decision;
  readonly meta: InputMeta;
  then(expected: ReadonlyArray<{ type: EventType; data?: unknown }>): Decision;
  thenRejects(reason: string): Decision;
  thenNothing(): Decision;
}

export function given(payloads: ReadonlyArray<DomainEvent | EventPayload> = []) {
  const events = stored(payloads);
  const state = fold(events);
  return {
    state,
    when(input: PlannerInput, meta: Partial<InputMeta> = {}): Then {
      const m = metaOf(meta);
      const decision = decide(state, input, m, deps);
      checkEnvelopes(decision.events, state.version, m);
      // The decision's state is the fold of its events: the decider and evolve agree.
      expect(JSON.stringify(decision.state.snapshot.context)).toBe(
        JSON.stringify(decision.events.reduce(evolve, state).snapshot.context),
      );
      return {
        decision,
        meta: m,
        then(expected) {
          expect(decision.events.map((e) => e.type)).toEqual(expected.map((e) => e.type));
          decision.events.forEach((event, i) => {
            const want = expected[i]!;
            if ('data' in want) expect(event.data, `data of ${event.type} (#${i})`).toEqual(want.data);
          });
          return decision;
        },
        thenRejects(reason) {
          expect(decision.events.map((e) => e.type)).toEqual(['InputRejected']);
          expect((decision.events[0] as EventOf<'InputRejected'>).data.reason).toContain(reason);
          expect(decision.commands).toEqual([]);
          return decision;
        },
        thenNothing() {
          expect(decision.events).toEqual([]);
          expect(decision.commands).toEqual([]);
          expect(decision.state).toBe(state);
          return decision;
        },
      };
    },
  };
}

function checkEnvelopes(events: readonly DomainEvent[], version: number, meta: InputMeta): void {
  events.forEach((event, i) => {
    const sequence = version + i + 1;
    expect(DomainEvent.parse(event)).toEqual(event);
    expect(event).toMatchObject({
      id: `${meta.messageId}/${sequence}`,
      version: EVENT_SCHEMA_VERSION,
      sessionId: SESSION,
      sequence,
      timestamp: meta.now,
      causationId: meta.messageId,
      correlationId: meta.correlationId ?? SESSION,
    });
    expect(event.inputSequence).toBe(meta.streamSequence);
  });
}

// Input builders.
export const submit = (text: string, config?: Extract<SessionInput, { type: 'SubmitInput' }>['config']): PlannerInput =>
  config ? { type: 'SubmitInput', text, config } : { type: 'SubmitInput', text };
export const completed = (taskId: string, dispatchId: string, output = `output of ${taskId}`): PlannerInput => ({
  type: 'TaskCompleted',
  taskId,
  dispatchId,
  output,
});
export const failed = (taskId: string, dispatchId: string, error = 'boom', retryable?: boolean): PlannerInput =>
  retryable === undefined
    ? { type: 'TaskFailed', taskId, dispatchId, error }
    : { type: 'TaskFailed', taskId, dispatchId, error, retryable };
export const needs = (taskId: string, dispatchId: string, question: string): PlannerInput => ({
  type: 'NeedsClarification',
  taskId,
  dispatchId,
  question,
});
export const answer = (taskId: string, text: string): PlannerInput => ({ type: 'ProvideClarification', taskId, answer: text });
export const cancel = (reason?: string): PlannerInput => (reason ? { type: 'CancelSession', reason } : { type: 'CancelSession' });
export const retryDue = (taskId: string, attempt: number): PlannerInput => ({ type: 'RetryDue', taskId, attempt });
export const invalid = (reason: string, inputType?: string): PlannerInput =>
  inputType ? { type: 'InvalidInput', reason, inputType } : { type: 'InvalidInput', reason };

/** The id planText gives the `n`th task (1-based) of a text, found from the plan itself. */
export const taskIds = (text: string, startIndex = 0): string[] => planText(text, { startIndex }).map((t) => t.id);
/** The run id of the spec session, from its state or its log (its SessionStarted): null if it has none. */
export function runIdOf(from: SessionState | readonly DomainEvent[]): string | null {
  if (!Array.isArray(from)) return (from as SessionState).snapshot.context.runId;
  const started = (from as readonly DomainEvent[]).find((e) => e.type === 'SessionStarted') as EventOf<'SessionStarted'> | undefined;
  return started?.data.runId ?? null;
}

/**
 * The dispatch id of a task attempt in the spec session, in the run `from` (a state or a log) holds:
 * `s1.<runId>.<taskId>.<attempt>`, or `s1.<taskId>.<attempt>` in a session started without a run id.
 */
export const dispatch = (taskId: string, attempt: number, from: SessionState | readonly DomainEvent[]): string =>
  dispatchIdFor(SESSION, taskId, attempt, runIdOf(from));

/** What SessionStarted's `runId` is: 8 hex digits (a hash of what only this start has). */
export const RUN_ID = expect.stringMatching(/^[0-9a-f]{8}$/) as unknown as string;
