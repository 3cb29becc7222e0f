/**
 * The states of one machine definition, indexed for compiled transitions (compiledMachine.ts):
 * every atomic state (a leaf) with its path of nodes to the root, each node with its transitions
 * compiled (guards, target leaf, actions). Refuses what compiled machines do not support.
 */
import type { AnyStateMachine, AnyStateNode, StateValue } from 'xstate';
import { UnsupportedMachineError } from '../errors.js';
import { compileAction, compileGuard, type CompiledAction, type Guard } from './compiledActions.js';

export interface Node {
  readonly parent: Node | undefined;
  readonly transitions: Map<string, CompiledTransition[]>;
}
export interface Leaf {
  readonly value: StateValue;
  readonly node: Node;
}
export interface CompiledTransition {
  guard?: Guard;
  target?: Leaf;
  actions: CompiledAction[];
}

/** A machine's leaves by id, by value and by value object. */
export class StateIndex {
  private readonly byId = new Map<string, Leaf>();
  // By the value's string (a top-level state) or JSON (a nested one), for states restored from JSON.
  private readonly byValue = new Map<string, Leaf>();
  // Live states carry the leaf's own value object: found by identity, with no JSON per event.
  private readonly byObject = new WeakMap<object, Leaf>();
  /** The leaf the machine starts in. */
  readonly initial: Leaf;

  constructor(
    private readonly machine: AnyStateMachine,
    asChild: boolean,
  ) {
    const nodes: [AnyStateNode, Node][] = [];
    this.build(machine.root, undefined, nodes);
    // Transitions are compiled after every leaf exists, since a target may come later in the tree.
    for (const [stateNode, node] of nodes) this.compileTransitions(stateNode, node, asChild);
    this.initial = this.leafFor(machine.root);
  }

  /** Whether `value` is a state of this machine. */
  has(value: unknown): boolean {
    if (typeof value !== 'string' && (typeof value !== 'object' || value === null)) return false;
    return this.byValue.has(valueKey(value as StateValue));
  }

  /** The leaf of a state value; UnsupportedMachineError if the machine has no such state. */
  leafOf(value: StateValue): Leaf {
    if (typeof value === 'object') {
      const hit = this.byObject.get(value);
      if (hit) return hit;
    }
    const leaf = this.byValue.get(valueKey(value));
    if (!leaf) throw new UnsupportedMachineError(`${this.machine.id}: no state ${JSON.stringify(value)}`);
    if (typeof value === 'object') this.byObject.set(value, leaf);
    return leaf;
  }

  private build(stateNode: AnyStateNode, parent: Node | undefined, nodes: [AnyStateNode, Node][]): void {
    assertSupported(this.machine, stateNode);
    const node: Node = { parent, transitions: new Map() };
    nodes.push([stateNode, node]);
    if (stateNode.type === 'atomic') {
      // Shared by every state in this leaf and a WeakMap key: frozen.
      const leaf = { value: deepFreeze(valueOf(stateNode.path)), node };
      this.byId.set(stateNode.id, leaf);
      this.byValue.set(valueKey(leaf.value), leaf);
      if (typeof leaf.value === 'object') this.byObject.set(leaf.value, leaf);
    }
    for (const child of Object.values(stateNode.states) as AnyStateNode[]) this.build(child, node, nodes);
  }

  private compileTransitions(stateNode: AnyStateNode, node: Node, asChild: boolean): void {
    const { machine } = this;
    for (const [eventType, candidates] of stateNode.transitions) {
      node.transitions.set(
        eventType,
        candidates.map((t) => ({
          ...(t.guard === undefined ? {} : { guard: compileGuard(machine, t.guard) }),
          ...(t.target?.length ? { target: this.leafFor(t.target[0]!) } : {}),
          actions: t.actions.map((a) => compileAction(machine, a, asChild)),
        })),
      );
    }
  }

  /** The leaf a transition to `stateNode` lands in: a compound state's initial leaf. */
  private leafFor(stateNode: AnyStateNode): Leaf {
    let n = stateNode;
    while (n.type === 'compound') n = n.initial.target[0]!;
    return this.byId.get(n.id)!;
  }
}

function deepFreeze(value: StateValue): StateValue {
  if (typeof value === 'object') for (const v of Object.values(value)) deepFreeze(v as StateValue);
  return Object.freeze(value);
}

const valueKey = (value: StateValue): string => (typeof value === 'string' ? value : JSON.stringify(value));

function valueOf(path: readonly string[]): StateValue {
  let value: StateValue = path[path.length - 1]!;
  for (let i = path.length - 2; i >= 0; i--) value = { [path[i]!]: value };
  return value;
}

function assertSupported(machine: AnyStateMachine, node: AnyStateNode): void {
  const where = `${machine.id}: state ${node.id}`;
  const refuse = (what: string) => {
    throw new UnsupportedMachineError(`${where} uses ${what}, which compiled machines do not support`);
  };
  if (node.type !== 'atomic' && node.type !== 'compound') refuse(`a ${node.type} state`);
  // `after` and `invoke` come first: xstate implements them with entry actions of their own.
  if (node.config.after) refuse('delayed (after) transitions');
  if (node.invoke.length) refuse('invoke');
  if (node.always?.length) refuse('eventless (always) transitions');
  if (node.entry.length || node.exit.length) refuse('entry/exit actions');
  for (const [eventType, candidates] of node.transitions) {
    if (eventType.includes('*')) refuse(`the wildcard "${eventType}"`);
    for (const t of candidates) if ((t.target?.length ?? 0) > 1) refuse('multiple targets');
  }
}
