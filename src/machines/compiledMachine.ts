import type { AnyStateMachine, EventObject, StateValue } from 'xstate';
import { UnsupportedMachineError } from '../errors.js';
import { IdMap } from './idMap.js';
import type { ActionRun, Args, CompiledAction } from './compiledActions.js';
import { StateIndex, type CompiledTransition, type Node } from './stateIndex.js';

/**
 * A machine's state as immutable data: what a compiled transition reads and returns. JSON-safe
 * (`children` serializes as a record). Context values are never `undefined`: an assignment of
 * `undefined` removes the key, so a state restored from JSON is identical to the live one.
 */
export interface PlainState<C extends object = Record<string, unknown>> {
  value: StateValue;
  context: C;
  /** Spawned child actors by id. */
  children: IdMap<PlainState>;
  /** A child's actor source (the key in the parent's `actors`); absent on the root. */
  src?: string;
}

/** A named (custom) action a transition emits instead of executing: its type and resolved params. */
export interface EmittedAction {
  type: string;
  params?: unknown;
}

/** A machine definition compiled to a pure transition function over {@link PlainState}. */
export interface CompiledMachine<C extends object> {
  readonly id: string;
  /** The initial state for `input`. */
  initial(input: unknown): PlainState<C>;
  /** Whether `value` is a state of this machine, or with `src`, of that spawned child machine. */
  isState(value: unknown, src?: string): boolean;
  /**
   * The next state and the named actions the transition emits; `state` is unchanged. With
   * `effects: false` (a fold, which drops them) no action is emitted and no params are computed.
   */
  transition(state: PlainState<C>, event: EventObject, options?: { effects?: boolean }): [PlainState<C>, readonly EmittedAction[]];
}

/** What a transition that matches nothing emits: shared, so frozen. */
const NONE = Object.freeze([]) as unknown as EmittedAction[];

/**
 * Compiles an xstate v5 machine definition into a plain transition function with the same
 * semantics for the subset our machines use: compound states, event transitions chosen deepest
 * first by guard, assign, sendTo a child, spawnChild (also from enqueueActions) and named actions.
 * Anything else (entry/exit, always, after, invoke, parallel, history, final states, wildcards) is
 * refused when compiling, so a machine cannot silently outgrow it. Why: an xstate transition costs
 * about 8 µs here and a task event takes two; replay and decide need far less. The xstate machine
 * stays the specification: tests check this against xstate's own transition on every model path
 * and on random sessions, and live actors (the inspector) still run on xstate.
 */
export function compileMachine<C extends object>(machine: AnyStateMachine, asChild = false): CompiledMachine<C> {
  const children = new Map<string, CompiledMachine<Record<string, unknown>>>();
  const childLogic = (src: string): CompiledMachine<Record<string, unknown>> => {
    let compiled = children.get(src);
    if (!compiled) {
      const logic = (machine.implementations.actors as Record<string, unknown>)[src];
      if (!logic || typeof (logic as AnyStateMachine).root !== 'object') {
        throw new UnsupportedMachineError(`${machine.id}: actor "${src}" is not a state machine`);
      }
      compiled = compileMachine(logic as AnyStateMachine, true);
      children.set(src, compiled);
    }
    return compiled;
  };
  const states = new StateIndex(machine, asChild);
  const contextConfig = machine.config.context as unknown;

  return {
    id: machine.id,
    isState(value, src) {
      if (src !== undefined) return childLogic(src).isState(value);
      return states.has(value);
    },
    initial(input) {
      const context =
        typeof contextConfig === 'function' ? contextConfig({ input }) : { ...(contextConfig as object) };
      return { value: states.initial.value, context: context as C, children: IdMap.empty() };
    },
    transition(state, event, options) {
      const leaf = states.leafOf(state.value);
      const chosen = select(leaf.node, { context: state.context as Record<string, unknown>, event });
      if (!chosen) return [state, NONE];
      const run = new Run(state.context as Record<string, unknown>, state.children, event, options?.effects ?? true, childLogic);
      run.actions(chosen.actions);
      run.deliver();
      const value = chosen.target ? chosen.target.value : state.value;
      const next: PlainState<C> = { value, context: run.context as C, children: run.children };
      if (state.src !== undefined) next.src = state.src;
      return [next, run.emitted];
    },
  };
}

/** The first enabled transition for the event, from the active leaf up to the root. */
function select(node: Node | undefined, args: Args): CompiledTransition | undefined {
  for (; node; node = node.parent) {
    const candidates = node.transitions.get(args.event.type);
    if (!candidates) continue;
    for (const t of candidates) if (!t.guard || t.guard(args)) return t;
  }
  return undefined;
}

/** One transition's effects on context and children, applied in order as xstate applies them. */
class Run implements ActionRun {
  // Allocated on first use: most transitions emit nothing, send once and spawn nothing.
  emitted: EmittedAction[] = NONE;
  private sends: { to: string; event: EventObject }[] | undefined;
  /** Children spawned by this transition, added at once (a plan spawns hundreds). */
  private spawned: [string, PlainState][] | undefined;
  constructor(
    public context: Record<string, unknown>,
    public children: PlainState['children'],
    readonly event: EventObject,
    readonly effects: boolean,
    private readonly childLogic: (src: string) => CompiledMachine<Record<string, unknown>>,
  ) {}

  actions(list: readonly CompiledAction[]): void {
    for (const action of list) action(this);
  }
  assign(partial: Record<string, unknown>): void {
    this.context = merge(this.context, partial);
  }
  emit(type: string, params: unknown): void {
    if (this.emitted === NONE) this.emitted = [];
    this.emitted.push(params === undefined ? { type } : { type, params });
  }
  spawn(src: string, id: string, input: unknown): void {
    const { value, context, children } = this.childLogic(src).initial(input);
    // A literal, not `{ ...initial, src }`: V8 (Node 20) takes a slow path for a spread followed
    // by a property, ~0.8 µs per child, and a plan spawns hundreds.
    (this.spawned ??= []).push([id, { value, context, children, src }]);
  }
  send(to: string, event: EventObject): void {
    (this.sends ??= []).push({ to, event });
  }
  /** Sends to children are delivered after the transition, as xstate defers them. */
  deliver(): void {
    if (this.spawned) this.children = this.children.setAll(this.spawned);
    if (!this.sends) return;
    for (const { to, event } of this.sends) {
      const child = this.children.get(to);
      // As xstate: sending to an actor that does not exist is an error, not a silent no-op.
      if (!child) throw new Error(`unable to send ${event.type} to unknown actor "${to}"`);
      const [next] = this.childLogic(child.src!).transition(child, event);
      if (next !== child) this.children = this.children.set(to, next);
    }
  }
}

/** xstate's `{ ...context, ...partial }`, except that an `undefined` value removes the key. */
function merge(context: Record<string, unknown>, partial: Record<string, unknown>): Record<string, unknown> {
  let adds = false;
  let undefinedValues = false;
  let clears = false;
  for (const key in partial) {
    const has = key in context;
    if (partial[key] !== undefined) {
      if (!has) adds = true;
      continue;
    }
    undefinedValues = true;
    // Clearing a key the context does not have (a task's retryAt, mostly) changes nothing.
    if (has) clears = true;
  }
  let next: Record<string, unknown>;
  if (clears) {
    next = {};
    for (const key in context) if (!(key in partial)) next[key] = context[key];
  } else if (adds) {
    if (!undefinedValues) return Object.assign({}, context, partial);
    next = Object.assign({}, context);
  } else {
    // Only keys the context has: a spread copy keeps its shape, ~3 times faster than
    // Object.assign here. (A spread followed by a new key is the slow case, above.)
    next = { ...context };
  }
  for (const key in partial) if (partial[key] !== undefined) next[key] = partial[key];
  return next;
}
