/**
 * The reference fold: the session statechart run by xstate's own pure transition, with the
 * `sendTo` actions it returns delivered to the task actors by transitioning their logic. The
 * compiled machines (src/machines/compiledMachine.ts) must agree with it on every event.
 */
import type { SnapshotFrom } from 'xstate';
import { sessionMachine } from '../../src/machines/sessionMachine.js';
import { taskMachine, type TaskEvent } from '../../src/machines/taskMachine.js';
import type { DomainEvent } from '../../src/protocol/events.js';
import type { PlannerCommand } from '../../src/protocol/commands.js';
import { pureInitial, pureTransition, type PendingAction } from './pureTransition.js';

export type XSessionSnapshot = SnapshotFrom<typeof sessionMachine>;
type XTaskSnapshot = SnapshotFrom<typeof taskMachine>;

export const referenceInitial = (sessionId: string): XSessionSnapshot => pureInitial(sessionMachine, { sessionId })[0];

/** One event through xstate: the next snapshot and the commands (effect actions) it emitted. */
export function referenceStep(snapshot: XSessionSnapshot, event: DomainEvent): { snapshot: XSessionSnapshot; commands: PlannerCommand[] } {
  const [next, actions] = pureTransition(sessionMachine, snapshot, event);
  let result = next;
  const commands: PlannerCommand[] = [];
  for (const action of actions) {
    if (action.type === 'xstate.sendTo') result = deliverToTask(result, action);
    else if (action.type === 'executeTask' || action.type === 'requestClarification') commands.push(action.params as PlannerCommand);
  }
  return { snapshot: result, commands };
}

/** xstate's persisted form of a reference snapshot, comparable with `toPersistedSnapshot`. */
export const referencePersisted = (snapshot: XSessionSnapshot): unknown => sessionMachine.getPersistedSnapshot(snapshot);

function deliverToTask(snapshot: XSessionSnapshot, action: PendingAction): XSessionSnapshot {
  const { targetId, event } = action.params as { targetId: string; event: TaskEvent };
  // xstate's transition already threw for a target that does not exist.
  const child = snapshot.children[targetId]!;
  const [transitioned] = pureTransition(taskMachine, child.getSnapshot() as XTaskSnapshot, event);
  const ref = new TaskRef(targetId, transitioned) as unknown as (typeof snapshot.children)[string];
  return { ...snapshot, children: { ...snapshot.children, [targetId]: ref } } as XSessionSnapshot;
}

/** A stand-in for a task actor in a pure snapshot: it only holds the task's snapshot. */
class TaskRef {
  readonly src = 'task';
  readonly systemId = undefined;
  readonly _syncSnapshot = false;
  constructor(
    readonly id: string,
    private readonly snapshot: XTaskSnapshot,
  ) {}
  getSnapshot(): XTaskSnapshot {
    return this.snapshot;
  }
  getPersistedSnapshot(): unknown {
    return taskMachine.getPersistedSnapshot(this.snapshot);
  }
}
