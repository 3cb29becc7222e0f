import type { PlainState } from './compiledMachine.js';

/**
 * A plain machine state in xstate's persisted-snapshot form, so a live xstate actor (the inspector's
 * mirror) can start from the state a fold produced: `createActor(machine, { snapshot })`.
 */
export function toPersistedSnapshot(state: PlainState<object>): Record<string, unknown> {
  // fromEntries, not `children[id] = …`: an id such as "__proto__" must stay an entry.
  const children = Object.fromEntries(
    [...state.children.entries()].map(([id, child]) => [
      id,
      { snapshot: toPersistedSnapshot(child), src: child.src, syncSnapshot: false },
    ]),
  );
  return { status: 'active', value: state.value, historyValue: {}, context: state.context, children };
}
