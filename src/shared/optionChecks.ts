import { ValidationError } from '../errors.js';

/**
 * Throws a ValidationError naming `name` and its rule unless `value` is undefined (the default
 * applies) or an integer from `min` to `max`. Options are checked before anything is opened or
 * connected: a bad limit taken silently shows up later, far from its cause (a negative input limit
 * rejects every input; a zero snapshot interval switches snapshots off).
 */
export function checkIntegerOption(name: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (value === undefined) return;
  if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max) return;
  throw new ValidationError(`${name} must be ${integerRule(min, max)}, got ${shown(value)}`);
}

/**
 * Throws a ValidationError naming `name` unless `value` is undefined (the default applies) or a
 * function. The types forbid anything else, but a JavaScript caller's `newId: 'x'` would otherwise
 * be taken and fail at first use, deep inside, as "is not a function".
 */
export function checkFunctionOption(name: string, value: unknown): void {
  if (value === undefined || typeof value === 'function') return;
  throw new ValidationError(`${name} must be a function, got ${shown(value)}`);
}

/** How {@link checkObjectWithMethods} words and applies its rule. */
export interface MethodsRule {
  /** What the object is, for the message (`a NATS connection`); default `an object`. */
  kind?: string;
  /** Refuse undefined too (an option without a default); default false. */
  required?: boolean;
}

/**
 * Throws a ValidationError naming `name`, the methods it needs and those it lacks, unless `value`
 * is undefined (the default applies; see `rule.required`) or an object with a function at each of
 * `methods`, its own or inherited (class instances pass). A dotted method (`compactor.compact`)
 * reaches into a member. Only what the library calls is checked: a duck-typed stand-in is fine.
 */
export function checkObjectWithMethods(name: string, value: unknown, methods: readonly string[], rule: MethodsRule = {}): void {
  if (value === undefined && rule.required !== true) return;
  const holder = typeof value === 'object' || typeof value === 'function' ? (value as object | null) : null;
  const missing = holder === null ? undefined : methods.filter((path) => typeof at(holder, path) !== 'function');
  if (missing?.length === 0) return;
  const wanted = `an object with ${methods.length === 1 ? 'method' : 'methods'} ${listed(methods)}`;
  const expected = rule.kind === undefined ? wanted : `${rule.kind} (${wanted})`;
  const got = missing === undefined ? shown(value) : `an object without ${listed(missing)}`;
  throw new ValidationError(`${name} must be ${expected}, got ${got}`);
}

/** The level methods every part of the library logs with (a pino Logger has them, and so has `console`). */
const LOG_LEVEL_METHODS = ['debug', 'info', 'warn', 'error'] as const;

/** The functions of DecideDeps the decider calls (`maxCommandBytes` is data, and optional). */
const DECIDE_DEPS_METHODS = ['plan', 'countTokens', 'compactor.compact'] as const;

/**
 * Throws a ValidationError unless `value` is undefined or a pino-like logger: the level methods,
 * and `also`, what else its entry point calls. `name` is the option as its entry point names it
 * (`executor: logger`).
 */
export function checkLoggerOption(name: string, value: unknown, also: readonly string[] = []): void {
  checkObjectWithMethods(name, value, [...LOG_LEVEL_METHODS, ...also], { kind: 'a pino-like logger' });
}

/**
 * Throws a ValidationError unless `value` looks like a NATS connection (required: there is no
 * default). Only `isClosed` is asked for, as a stand-in connection in a test has it; undefined or a
 * URL string would otherwise fail inside nats.js ("reading 'options'").
 */
export function checkConnectionOption(name: string, value: unknown): void {
  checkObjectWithMethods(name, value, ['isClosed'], { kind: 'a NATS connection', required: true });
}

/** The planner's injected dependencies, as the embedded runtime and the planner service take them. */
export interface PlannerDepOptions {
  logger?: unknown;
  clock?: unknown;
  newId?: unknown;
  decideDeps?: unknown;
}

/**
 * Throws a ValidationError for the first of `logger`, `clock`, `newId` and `decideDeps` that is
 * given but unusable. One check for both composition roots, so they refuse alike, and before
 * anything is opened: each would otherwise fail only when the first input is handled.
 */
export function checkPlannerDeps(o: PlannerDepOptions): void {
  // The planner asks isLevelEnabled('debug') at each commit: `console` would fail at the first input.
  checkLoggerOption('logger', o.logger, ['isLevelEnabled']);
  checkFunctionOption('clock', o.clock);
  checkFunctionOption('newId', o.newId);
  checkObjectWithMethods('decideDeps', o.decideDeps, DECIDE_DEPS_METHODS);
}

/** What `holder` has at the dotted `path` (undefined where a step is missing or not an object). */
function at(holder: object, path: string): unknown {
  let current: unknown = holder;
  for (const key of path.split('.')) {
    if ((typeof current !== 'object' && typeof current !== 'function') || current === null) return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}

/** `a`, `a and b`, `a, b and c`. */
function listed(names: readonly string[]): string {
  return names.length < 2 ? names.join('') : `${names.slice(0, -1).join(', ')} and ${names.at(-1)!}`;
}

/** The rule in words, as a caller would state it (and as the CLI states its flags' ranges). */
function integerRule(min: number, max: number): string {
  if (max !== Number.MAX_SAFE_INTEGER) return `an integer from ${min} to ${max}`;
  if (min === 0) return 'a non-negative integer';
  return min === 1 ? 'a positive integer' : `an integer of at least ${min}`;
}

/**
 * The offending value, quoted when it is a string so `'100'` is told apart from `100`; an object
 * or array is named, not printed (`[object Object]` says nothing, and it may hold secrets).
 */
function shown(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'function') return 'a function';
  return typeof value === 'object' && value !== null ? 'an object' : String(value);
}
