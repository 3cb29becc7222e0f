import type { AnyStateMachine, EventObject } from 'xstate';
import { UnsupportedMachineError } from '../errors.js';

/** What guards, assignments and action params are called with. */
export interface Args {
  context: Record<string, unknown>;
  event: EventObject;
}

/** A compiled guard: is the transition enabled for these arguments? */
export type Guard = (args: Args) => boolean;

/** The effects one transition's actions can have, applied by the compiled machine. */
export interface ActionRun {
  readonly context: Record<string, unknown>;
  readonly event: EventObject;
  /** Whether named effects are wanted: a fold drops them, so their params are never computed. */
  readonly effects: boolean;
  assign(partial: Record<string, unknown>): void;
  emit(type: string, params: unknown): void;
  spawn(src: string, id: string, input: unknown): void;
  send(to: string, event: EventObject): void;
}

/** A compiled action: applies itself to the run, reading the context as it is at that point. */
export type CompiledAction = (run: ActionRun) => void;

// xstate's built-in action creators return functions tagged with these fields.
interface Builtin {
  type: string;
  assignment?: unknown;
  to?: unknown;
  event?: unknown;
  delay?: unknown;
  collect?: (args: unknown, params: unknown) => void;
  id?: unknown;
  src?: unknown;
  input?: unknown;
}

type Fn = (args: Args, params?: unknown) => unknown;
const resolve = (value: unknown, args: Args, params?: unknown): unknown =>
  typeof value === 'function' ? (value as Fn)(args, params) : value;
const argsOf = (run: ActionRun): Args => ({ context: run.context, event: run.event });

/**
 * Compiles one entry of a transition's `actions`: a name or `{ type, params }` resolved through the
 * machine's implementations, or an inline built-in. A named action that is not built in is an
 * effect: emitted with its resolved params for the runtime to perform. A child machine may not
 * have effects: they would be its own actor's to run, and a fold has no actor.
 */
export function compileAction(machine: AnyStateMachine, entry: unknown, asChild: boolean): CompiledAction {
  if (typeof entry === 'function') return fromBuiltin(machine, entry as unknown as Builtin, undefined, asChild);
  const { type, params } = typeof entry === 'string' ? { type: entry, params: undefined } : (entry as { type: string; params?: unknown });
  const impl = (machine.implementations.actions as Record<string, unknown>)[type];
  if (typeof impl !== 'function') throw new UnsupportedMachineError(`${machine.id}: action "${type}" has no implementation`);
  if (isBuiltin(impl)) return fromBuiltin(machine, impl as unknown as Builtin, params, asChild);
  if (asChild) throw new UnsupportedMachineError(`${machine.id}: a spawned machine may not emit the effect "${type}"`);
  return (run) => {
    if (run.effects) run.emit(type, resolve(params, argsOf(run)));
  };
}

const isBuiltin = (fn: object): boolean => typeof (fn as Builtin).type === 'string' && (fn as Builtin).type.startsWith('xstate.');

function fromBuiltin(machine: AnyStateMachine, fn: Builtin, params: unknown, asChild: boolean): CompiledAction {
  const refuse = (): never => {
    throw new UnsupportedMachineError(`${machine.id}: the action ${fn.type ?? 'inline function'} is not supported`);
  };
  // Most actions have no params: no arguments object is built for them.
  const paramsOf: (run: ActionRun, args?: Args) => unknown =
    params === undefined ? () => undefined : (run, args = argsOf(run)) => resolve(params, args);
  switch (fn.type) {
    case 'xstate.assign': {
      const assignment = fn.assignment;
      if (typeof assignment === 'function') {
        return (run) => {
          const args = argsOf(run);
          run.assign((assignment as Fn)(args, paramsOf(run, args)) as Record<string, unknown>);
        };
      }
      const entries = Object.entries(assignment as Record<string, unknown>);
      return (run) => {
        const args = argsOf(run);
        const p = paramsOf(run, args);
        const partial: Record<string, unknown> = {};
        for (const [key, value] of entries) partial[key] = resolve(value, args, p);
        run.assign(partial);
      };
    }
    case 'xstate.sendTo': {
      if (fn.delay !== undefined) refuse();
      const { to, event } = fn;
      if (typeof to !== 'string' && typeof to !== 'function') refuse();
      return (run) => {
        const args = argsOf(run);
        const p = paramsOf(run, args);
        run.send(resolve(to, args, p) as string, resolve(event, args, p) as EventObject);
      };
    }
    case 'xstate.spawnChild': {
      const { src, id, input } = fn;
      // A child is found by its id: one must be given (xstate would key it "undefined").
      if (typeof src !== 'string' || id === undefined) refuse();
      return (run) => {
        const args = argsOf(run);
        run.spawn(src as string, resolve(id, args) as string, resolve(input, args));
      };
    }
    case 'xstate.enqueueActions': {
      const collect = fn.collect!;
      return (run) =>
        collect(
          {
            context: run.context,
            event: run.event,
            enqueue: enqueuer(machine, run, asChild),
            check: () => refuse(), // guards inside enqueueActions: not supported
          },
          paramsOf(run),
        );
    }
    default:
      return refuse();
  }
}

/** The `enqueue` of enqueueActions, for the built-ins the compiled machine supports. */
function enqueuer(machine: AnyStateMachine, run: ActionRun, asChild: boolean) {
  const enqueue = (action: unknown) => compileAction(machine, action, asChild)(run);
  const unsupported = (name: string) => () => {
    throw new UnsupportedMachineError(`${machine.id}: enqueue.${name} is not supported`);
  };
  return Object.assign(enqueue, {
    assign: (assignment: unknown) => fromBuiltin(machine, { type: 'xstate.assign', assignment }, undefined, asChild)(run),
    sendTo: (to: unknown, event: unknown) => fromBuiltin(machine, { type: 'xstate.sendTo', to, event }, undefined, asChild)(run),
    spawnChild: (src: string, options: { id?: unknown; input?: unknown } = {}) =>
      fromBuiltin(machine, { type: 'xstate.spawnChild', src, id: options.id, input: options.input }, undefined, asChild)(run),
    raise: unsupported('raise'),
    cancel: unsupported('cancel'),
    emit: unsupported('emit'),
    sendParent: unsupported('sendParent'),
    stopChild: unsupported('stopChild'),
  });
}

/**
 * Compiles a transition guard: a name or `{ type, params }` resolved through the machine's
 * implementations, or an inline predicate. Higher-order guards (and/or/not) are not supported.
 */
export function compileGuard(machine: AnyStateMachine, guard: unknown): Guard {
  const { fn, params } =
    typeof guard === 'function'
      ? { fn: guard, params: undefined }
      : (() => {
          const { type, params } = typeof guard === 'string' ? { type: guard, params: undefined } : (guard as { type: string; params?: unknown });
          return { fn: (machine.implementations.guards as Record<string, unknown>)[type], params };
        })();
  if (typeof fn !== 'function' || 'check' in fn) {
    throw new UnsupportedMachineError(`${machine.id}: the guard ${JSON.stringify(guard)} is not supported`);
  }
  return (args) => Boolean((fn as Fn)(args, resolve(params, args)));
}
