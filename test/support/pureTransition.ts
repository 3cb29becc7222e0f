import { createActor, type AnyActorLogic, type AnyActorScope, type EventFromLogic, type SnapshotFrom } from 'xstate';

/** An action a pure transition returned instead of executing: its type and params. */
export interface PendingAction {
  type: string;
  params?: unknown;
}

const scopes = new WeakMap<AnyActorLogic, { scope: AnyActorScope; sink: PendingAction[] }>();

/**
 * xstate's `transition()` without its per-call cost: xstate builds a new inert actor scope on every
 * call (it constructs an actor, which computes an initial snapshot). We build one per logic and
 * reuse it; actions are collected, never executed, so the result depends only on the arguments.
 * Safe because no machine here registers children under a `systemId`.
 */
export function pureTransition<L extends AnyActorLogic>(
  logic: L,
  snapshot: SnapshotFrom<L>,
  event: EventFromLogic<L>,
): [SnapshotFrom<L>, PendingAction[]] {
  const entry = scopeFor(logic);
  entry.sink.length = 0;
  const next = logic.transition(snapshot, event, entry.scope) as SnapshotFrom<L>;
  return [next, entry.sink.splice(0)];
}

/** The initial snapshot of `logic` for `input`, with the actions it would run. */
export function pureInitial<L extends AnyActorLogic>(logic: L, input?: unknown): [SnapshotFrom<L>, PendingAction[]] {
  const entry = scopeFor(logic);
  entry.sink.length = 0;
  const next = logic.getInitialSnapshot(entry.scope, input) as SnapshotFrom<L>;
  return [next, entry.sink.splice(0)];
}

function scopeFor(logic: AnyActorLogic) {
  let entry = scopes.get(logic);
  if (!entry) {
    const sink: PendingAction[] = [];
    const self = createActor(logic);
    const scope = {
      self,
      defer: () => {},
      id: '',
      logger: () => {},
      sessionId: '',
      stopChild: () => {},
      system: self.system,
      emit: () => {},
      actionExecutor: (action: PendingAction) => {
        sink.push({ type: action.type, params: action.params });
      },
    } as unknown as AnyActorScope;
    entry = { scope, sink };
    scopes.set(logic, entry);
  }
  return entry;
}
