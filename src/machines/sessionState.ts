import type { DomainEvent } from '../protocol/events.js';
import type { PlannerCommand } from '../protocol/commands.js';
import { sessionMachine, type SessionContext } from './sessionMachine.js';
import type { TaskContext } from './taskMachine.js';
import type { PlannedTask } from '../protocol/domain.js';
import { IdMap } from './idMap.js';
import { compileMachine, type PlainState } from './compiledMachine.js';

/** The session statechart's state as plain data; its `children` are the task actors' states. */
export type SessionSnapshot = PlainState<SessionContext>;
/** A task actor's state: its status is the state value. */
export type TaskSnapshot = PlainState<TaskContext>;

/** How many recent input ids a session remembers to drop redelivered messages (its inbox). */
export const INBOX_WINDOW = 1024;

/**
 * A session's state as event sourcing sees it: the statechart's state (with its task actors),
 * the stream version it was folded up to, and the ids of the inputs it has processed (the inbox;
 * derived from the events' causation ids, so it is exactly as durable as the log). Plain data:
 * JSON round trips it exactly.
 */
export interface SessionState {
  sessionId: string;
  snapshot: SessionSnapshot;
  version: number;
  recentInputs: string[];
  /** The stream sequence of each of `recentInputs` (events' `inputSequence`; 0 if none, e.g. the embedded bus). */
  recentSequences: number[];
  /**
   * The highest stream sequence among the inputs that have left the inbox window (0 if none). An
   * input at or below it is older than every input the window remembers: a redelivery, however far
   * back (a recreated durable consumer delivers the stream from its start). An input above it that
   * the window does not name was never applied, even if a later one was (inputs are applied in
   * stream order, but a lease handover can reorder them): it is applied, not taken for a repeat.
   */
  inputSequenceFloor: number;
  /**
   * The input whose events end the log, with the state before its first event: what decide needs
   * to finish that input's decision if its append was cut short. Kept in memory only (a snapshot
   * is saved after a whole append, so the events of a cut-short one are always in the tail).
   */
  lastInput?: LastInput;
}

/** The input whose events end a session's log (see {@link SessionState.lastInput}). */
export interface LastInput {
  messageId: string;
  /** The state before the input's first event, without a `lastInput` of its own. */
  before: SessionState;
  /** The input's `now`, correlation id and stream sequence, as its events carry them. */
  now: number;
  correlationId: string;
  inputSequence?: number;
}

/** The input of `event`: the same `lastInput` while its events go on, a new one at its first. */
function lastInputAfter(state: SessionState, event: DomainEvent): LastInput {
  const current = state.lastInput;
  if (current?.messageId === event.causationId && current.inputSequence === event.inputSequence) return current;
  const { lastInput: _, ...before } = state;
  const last: LastInput = { messageId: event.causationId, before, now: event.timestamp, correlationId: event.correlationId };
  if (event.inputSequence !== undefined) last.inputSequence = event.inputSequence;
  return last;
}

/** The inbox of a state: the window of recent input ids, their sequences, and the floor below it. */
type Inbox = Pick<SessionState, 'recentInputs' | 'recentSequences' | 'inputSequenceFloor'>;

/** The inbox once `event` is folded in: a new input enters the window, the oldest may leave it. */
function rememberInput(inbox: Inbox, event: DomainEvent): Inbox {
  const { recentInputs, recentSequences, inputSequenceFloor } = inbox;
  if (sameInput(recentInputs, recentSequences, event)) return { recentInputs, recentSequences, inputSequenceFloor };
  const cut = Math.max(0, recentInputs.length - INBOX_WINDOW + 1);
  const ids = recentInputs.slice(cut);
  const seqs = recentSequences.slice(cut);
  ids.push(event.causationId);
  seqs.push(event.inputSequence ?? 0);
  return { recentInputs: ids, recentSequences: seqs, inputSequenceFloor: maxOf(recentSequences, 0, cut, inputSequenceFloor) };
}

/**
 * Whether `event` was caused by the input the window ends with: the same message id and stream
 * sequence (a copy stored again under a new sequence is an input of its own, see `InputRepeated`).
 */
function sameInput(ids: readonly string[], seqs: readonly number[], event: DomainEvent): boolean {
  return ids[ids.length - 1] === event.causationId && seqs[seqs.length - 1] === (event.inputSequence ?? 0);
}

/** The largest of `values[from..to)` and `start`. */
function maxOf(values: readonly number[], from: number, to: number, start: number): number {
  let max = start;
  for (let i = from; i < to; i++) if (values[i]! > max) max = values[i]!;
  return max;
}

const session = compileMachine<SessionContext>(sessionMachine);

/** The state of a session that has no events yet. */
export function initialSessionState(sessionId: string): SessionState {
  return { sessionId, snapshot: session.initial({ sessionId }), version: 0, recentInputs: [], recentSequences: [], inputSequenceFloor: 0 };
}

/** evolve: folds one stored event into the state, dropping the commands it carries. */
export function evolve(state: SessionState, event: DomainEvent): SessionState {
  assertFollows(state, event);
  const [snapshot] = session.transition(state.snapshot, event, NO_EFFECTS);
  return { sessionId: state.sessionId, snapshot, version: event.sequence, ...rememberInput(state, event), lastInput: lastInputAfter(state, event) };
}

/** Folds drop the commands events carry: their params (e.g. the rendered context) are not built. */
const NO_EFFECTS = { effects: false };

/**
 * One transition of the session statechart on one event, with the task actors' transitions it
 * causes, all pure (the machines compiled by {@link compileMachine}). Returns the commands the
 * transition emitted, which the runtime performs only after the event is appended.
 */
export function step(state: SessionState, event: DomainEvent): { state: SessionState; commands: PlannerCommand[] } {
  assertFollows(state, event);
  const [snapshot, actions] = session.transition(state.snapshot, event);
  const commands: PlannerCommand[] = [];
  for (const action of actions) {
    if (action.type === 'executeTask' || action.type === 'requestClarification') {
      commands.push(action.params as PlannerCommand);
    }
  }
  const next = { sessionId: state.sessionId, snapshot, version: event.sequence, ...rememberInput(state, event), lastInput: lastInputAfter(state, event) };
  return { state: next, commands };
}

/**
 * Folds many events at once (replay, snapshot plus tail): the same transitions as {@link evolve},
 * but the inbox is copied once and then updated in place rather than copied per new input.
 * `state` itself is not modified.
 */
export function fold(state: SessionState, events: Iterable<DomainEvent>): SessionState {
  const folding = new SessionFold(state);
  for (const event of events) folding.add(event);
  return folding.state;
}

/** The last input a fold has seen: its first event's meta and the fold's position before it. */
interface FoldedInput {
  input: Pick<LastInput, 'messageId' | 'now' | 'correlationId'>;
  /** The input's stream sequence, as its first event carries it. */
  event: number | undefined;
  snapshot: SessionSnapshot;
  version: number;
  inputsEnd: number;
}

/** A fold in progress, for events that arrive one at a time (a pass over many sessions' events). */
export class SessionFold {
  private snapshot: SessionSnapshot;
  private version: number;
  /** Input ids and their sequences, oldest first: the window and, until trimmed, some before it. */
  private readonly inputs: string[];
  private readonly seqs: number[];
  /** The highest sequence among inputs trimmed off the front of `inputs`. */
  private trimmedFloor: number;
  /** The last input as the start state had it, until an event of another input comes. */
  private startLast: LastInput | undefined;
  /** The last input seen here: its first event's meta and the fold's position before it. */
  private last: FoldedInput | undefined;

  constructor(private readonly start: SessionState) {
    this.snapshot = start.snapshot;
    this.version = start.version;
    this.inputs = start.recentInputs.slice();
    this.seqs = start.recentSequences.slice();
    this.trimmedFloor = start.inputSequenceFloor;
    this.startLast = start.lastInput;
  }

  add(event: DomainEvent): void {
    assertFollows({ sessionId: this.start.sessionId, version: this.version }, event);
    const lastInput = this.last ? { id: this.last.input.messageId, seq: this.last.event } : { id: this.startLast?.messageId, seq: this.startLast?.inputSequence };
    if (lastInput.id !== event.causationId || lastInput.seq !== event.inputSequence) {
      const { snapshot, version } = this;
      const input = { messageId: event.causationId, now: event.timestamp, correlationId: event.correlationId };
      this.last = { input, event: event.inputSequence, snapshot, version, inputsEnd: this.inputs.length };
      this.startLast = undefined;
    }
    this.snapshot = session.transition(this.snapshot, event, NO_EFFECTS)[0];
    this.version = event.sequence;
    if (!sameInput(this.inputs, this.seqs, event)) {
      this.inputs.push(event.causationId);
      this.seqs.push(event.inputSequence ?? 0);
      // Trimmed now and then, not per event: amortized O(1). One entry more than the window is
      // kept, so that the state before the last input still has its whole window.
      if (this.inputs.length >= 2 * INBOX_WINDOW) {
        const cut = this.inputs.length - INBOX_WINDOW - 1;
        this.trimmedFloor = maxOf(this.seqs, 0, cut, this.trimmedFloor);
        this.inputs.splice(0, cut);
        this.seqs.splice(0, cut);
        if (this.last) this.last.inputsEnd = Math.max(0, this.last.inputsEnd - cut);
      }
    }
  }

  /** The state so far, detached: later events do not change it. */
  get state(): SessionState {
    const sessionId = this.start.sessionId;
    const { snapshot, version } = this;
    const state: SessionState = { sessionId, snapshot, version, ...this.inboxAt(this.inputs.length) };
    if (this.last) {
      const { input, event, inputsEnd, ...at } = this.last;
      state.lastInput = { ...input, before: { sessionId, ...at, ...this.inboxAt(inputsEnd) } };
      if (event !== undefined) state.lastInput.inputSequence = event;
    } else if (this.startLast) {
      state.lastInput = this.startLast;
    }
    return state;
  }

  /** The inbox of the state whose inputs end at `end` (an index into `inputs`). */
  private inboxAt(end: number): Inbox {
    const from = Math.max(0, end - INBOX_WINDOW);
    return {
      recentInputs: this.inputs.slice(from, end),
      recentSequences: this.seqs.slice(from, end),
      inputSequenceFloor: maxOf(this.seqs, 0, from, this.trimmedFloor),
    };
  }
}

function assertFollows(state: { sessionId: string; version: number }, event: DomainEvent): void {
  if (event.sequence !== state.version + 1) {
    throw new Error(`session ${state.sessionId}: event ${event.sequence} does not follow version ${state.version}`);
  }
}

/** The task actor state of `taskId`, if the session has planned it. */
export function taskSnapshot(state: SessionState, taskId: string): TaskSnapshot | undefined {
  return state.snapshot.children.get(taskId) as TaskSnapshot | undefined;
}

/**
 * The schema of serialized session state; bump it when the machines change shape or derive their
 * context differently, so older snapshots are rebuilt from the log. 3: distinct answer item ids.
 * 4: the input sequence. 5: tasks a session ends before they finish are Cancelled. 6: an input is
 * its message id and stream sequence (a copy under a new sequence is an input of its own). 7: the
 * session's endReason.
 */
export const STATE_SCHEMA = 7;

/** A JSON-safe form of the state: plain records all the way down (a snapshot store's input). */
export function serializeState(state: SessionState): unknown {
  const snapshot = plain(state.snapshot);
  const context = state.snapshot.context;
  snapshot.context = { ...context, plan: context.plan.toJSON() };
  const { sessionId, version, recentInputs, recentSequences, inputSequenceFloor } = state;
  return { sessionId, version, recentInputs, recentSequences, inputSequenceFloor, snapshot };
}

/** Restores a state from {@link serializeState}'s output (after a JSON round trip). */
export function restoreState(json: unknown): SessionState {
  const { sessionId, version, recentInputs, recentSequences, inputSequenceFloor, snapshot } = json as Partial<{ [K in keyof SessionState]: unknown }> & {
    snapshot?: PlainJson;
  };
  if (
    typeof sessionId !== 'string' ||
    typeof version !== 'number' ||
    !Array.isArray(recentInputs) ||
    !Array.isArray(recentSequences) ||
    recentSequences.length !== recentInputs.length ||
    typeof inputSequenceFloor !== 'number' ||
    typeof snapshot?.context !== 'object' ||
    typeof (snapshot.context as { plan?: unknown }).plan !== 'object' ||
    typeof snapshot.children !== 'object' ||
    !session.isState(snapshot.value) ||
    !Object.values(snapshot.children).every((child) => session.isState(child.value, child.src))
  ) {
    throw new Error('not a serialized session state of these machines');
  }
  const revived = revive(snapshot) as SessionSnapshot;
  const context = revived.context as unknown as { sessionId: string; config: unknown; runId?: string | null; plan: Record<string, PlannedTask> };
  // A snapshot saved before run ids has none in its context: its session started without one. Put
  // where the machine puts it, so that the state serializes as a fold of the log does.
  const { sessionId: id, config, runId = null, ...rest } = context;
  revived.context = { sessionId: id, config, runId, ...rest, plan: IdMap.from(context.plan) } as unknown as SessionSnapshot['context'];
  return { sessionId, version, recentInputs: recentInputs as string[], recentSequences: recentSequences as number[], inputSequenceFloor, snapshot: revived };
}

/** A machine state as JSON data: `children` a record of states. */
interface PlainJson {
  value: PlainState['value'];
  context: object;
  children: Record<string, PlainJson>;
  src?: string;
}

// Records by id are built with Object.fromEntries: `record[id] = …` would turn an id such as
// "__proto__" into the record's prototype instead of an entry.
function plain(state: PlainState<object>): PlainJson {
  const children = Object.fromEntries([...state.children.entries()].map(([id, child]) => [id, plain(child)]));
  return { ...state, children };
}

function revive(json: PlainJson): PlainState<object> {
  const children = IdMap.empty<PlainState>().setAll(
    Object.entries(json.children).map(([id, child]) => [id, revive(child) as PlainState] as const),
  );
  return { ...json, children };
}
