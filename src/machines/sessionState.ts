import { createActor, type SnapshotFrom } from 'xstate';
import type { DomainEvent } from '../protocol/events.js';
import type { PlannerCommand } from '../protocol/commands.js';
import { sessionMachine } from './sessionMachine.js';
import { taskMachine, type TaskEvent } from './taskMachine.js';
import { pureInitial, pureTransition, type PendingAction } from './pureTransition.js';

export type SessionSnapshot = SnapshotFrom<typeof sessionMachine>;
export type TaskSnapshot = SnapshotFrom<typeof taskMachine>;

/** How many recent input ids a session remembers to drop redelivered messages (its inbox). */
export const INBOX_WINDOW = 1024;

/**
 * A session's state as event sourcing sees it: the statechart snapshot (with its task actors),
 * the stream version it was folded up to, and the ids of the inputs it has processed (the inbox;
 * derived from the events' causation ids, so it is exactly as durable as the log).
 */
export interface SessionState {
  sessionId: string;
  snapshot: SessionSnapshot;
  version: number;
  recentInputs: string[];
}

/** The state of a session that has no events yet. */
export function initialSessionState(sessionId: string): SessionState {
  const [snapshot] = pureInitial(sessionMachine, { sessionId });
  return { sessionId, snapshot, version: 0, recentInputs: [] };
}

/** evolve: folds one stored event into the state, dropping the commands it carries. */
export function evolve(state: SessionState, event: DomainEvent): SessionState {
  return step(state, event).state;
}

/**
 * One transition of the session statechart on one event, with the task actors' transitions it
 * causes, all pure. Returns the commands the transition emitted, which the runtime performs only
 * after the event is appended. xstate's pure transition returns `sendTo` to a child as an action
 * rather than delivering it; we deliver it here by transitioning the child's logic.
 */
export function step(state: SessionState, event: DomainEvent): { state: SessionState; commands: PlannerCommand[] } {
  if (event.sequence !== state.version + 1) {
    throw new Error(`session ${state.sessionId}: event ${event.sequence} does not follow version ${state.version}`);
  }
  const [next, actions] = pureTransition(sessionMachine, state.snapshot, event);
  let snapshot = next;
  const commands: PlannerCommand[] = [];
  for (const action of actions) {
    if (action.type === 'xstate.sendTo') snapshot = deliverToTask(snapshot, action);
    else if (action.type === 'executeTask' || action.type === 'requestClarification') {
      commands.push(action.params as PlannerCommand);
    }
  }
  const recentInputs = rememberInput(state.recentInputs, event.causationId);
  return { state: { sessionId: state.sessionId, snapshot, version: event.sequence, recentInputs }, commands };
}

function deliverToTask(snapshot: SessionSnapshot, action: PendingAction): SessionSnapshot {
  const { targetId, event } = action.params as { targetId: string; event: TaskEvent };
  const child = snapshot.children[targetId];
  if (!child) return snapshot;
  const [transitioned] = pureTransition(taskMachine, child.getSnapshot() as TaskSnapshot, event);
  // assign() cannot delete a key, so clearing a field (`retryAt` on dispatch) leaves it undefined.
  // JSON drops such keys, and a restored state would then order its keys differently from the live
  // one once the field is set again; without them, snapshot + tail serializes like a full replay.
  const childNext = Object.values(transitioned.context).includes(undefined)
    ? ({ ...transitioned, context: definedOnly(transitioned.context) } as TaskSnapshot)
    : transitioned;
  const ref = new TaskRef(targetId, childNext) as unknown as (typeof snapshot.children)[string];
  return { ...snapshot, children: { ...snapshot.children, [targetId]: ref } } as SessionSnapshot;
}

/**
 * Holds a task actor's next snapshot in the session snapshot's `children`, where xstate keeps
 * actor refs. A full (never started) Actor per task transition cost more than the transition
 * itself; a pure fold only ever reads a child's snapshot and persists it, which is all this offers.
 * A restored snapshot (restoreState) has real actors again, as a live actor needs.
 */
class TaskRef {
  readonly src = 'task';
  readonly systemId = undefined;
  readonly _syncSnapshot = false;
  constructor(
    readonly id: string,
    private readonly snapshot: TaskSnapshot,
  ) {}
  getSnapshot(): TaskSnapshot {
    return this.snapshot;
  }
  getPersistedSnapshot(): unknown {
    return taskMachine.getPersistedSnapshot(this.snapshot);
  }
}

function rememberInput(recent: string[], id: string): string[] {
  if (recent[recent.length - 1] === id) return recent;
  const next = recent.length >= INBOX_WINDOW ? recent.slice(recent.length - INBOX_WINDOW + 1) : recent.slice();
  next.push(id);
  return next;
}

/** The task actor snapshot of `taskId`, if the session has planned it. */
export function taskSnapshot(state: SessionState, taskId: string): TaskSnapshot | undefined {
  return state.snapshot.children[taskId]?.getSnapshot() as TaskSnapshot | undefined;
}

/** The schema of serialized session state; bump it when the machines change shape. */
export const STATE_SCHEMA = 1;

/** A JSON-safe form of the state (xstate's persisted snapshot, children included). */
export function serializeState(state: SessionState): unknown {
  return {
    sessionId: state.sessionId,
    version: state.version,
    recentInputs: state.recentInputs,
    snapshot: sessionMachine.getPersistedSnapshot(state.snapshot),
  };
}

/** Restores a state from {@link serializeState}'s output; the task actors are restored too. */
export function restoreState(json: unknown): SessionState {
  const { sessionId, version, recentInputs, snapshot } = json as {
    sessionId: string;
    version: number;
    recentInputs: string[];
    snapshot: SessionSnapshot;
  };
  // An actor that is never started only restores the snapshot; nothing runs.
  const restored = createActor(sessionMachine, { snapshot, input: { sessionId } }).getSnapshot();
  return { sessionId, version, recentInputs, snapshot: restored };
}

function definedOnly<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
