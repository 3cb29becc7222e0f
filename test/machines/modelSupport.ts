/**
 * Shared pieces of the model-based tests: what a machine defines (state nodes and transitions,
 * read from its definition) and which of them a snapshot or a step visits.
 */
import type { AnyMachineSnapshot, AnyStateMachine, AnyStateNode, EventObject, StateValue } from 'xstate';
import { getStateNodes } from 'xstate/graph';
import { EVENT_SCHEMA_VERSION, type DomainEvent, type EventOf, type EventType } from '../../src/protocol/events.js';

/** Ids of every state node of the machine (the root excluded). */
export const definedStates = (machine: AnyStateMachine): Set<string> =>
  new Set(getStateNodes(machine.root).map((n) => n.id));

/** A key per transition definition: `source#event#index` (index among its event's candidates). */
export function definedTransitions(machine: AnyStateMachine): Set<string> {
  const keys = new Set<string>();
  for (const node of [machine.root, ...getStateNodes(machine.root)] as AnyStateNode[]) {
    for (const [eventType, candidates] of node.transitions) {
      candidates.forEach((_, i) => keys.add(`${node.id}#${eventType}#${i}`));
    }
  }
  return keys;
}

/** The transitions `event` takes from `snapshot`, as keys of {@link definedTransitions}. */
export function takenTransitions(machine: AnyStateMachine, snapshot: AnyMachineSnapshot, event: EventObject): string[] {
  return machine.getTransitionData(snapshot, event).map((t) => {
    const i = t.source.transitions.get(t.eventType)!.indexOf(t);
    return `${t.source.id}#${t.eventType}#${i}`;
  });
}

/** Ids of the state nodes a state value is in, e.g. {active: 'ready'} → session.active, session.active.ready. */
export function activeStates(machineId: string, value: StateValue): string[] {
  if (typeof value === 'string') return [`${machineId}.${value}`];
  return Object.entries(value).flatMap(([key, sub]) => [
    `${machineId}.${key}`,
    ...(sub === undefined ? [] : activeStates(`${machineId}.${key}`, sub as StateValue)),
  ]);
}

/** A domain event with a valid envelope; `sequence` is restamped when a path is replayed. */
export function domainEvent<T extends EventType>(type: T, data: EventOf<T>['data'], sessionId = 's1'): EventOf<T> {
  return {
    id: `model/${type}`,
    type,
    version: EVENT_SCHEMA_VERSION,
    sessionId,
    sequence: 1,
    timestamp: 0,
    causationId: `model-${type}`,
    correlationId: sessionId,
    data,
  } as DomainEvent as EventOf<T>;
}
