import { SessionId } from '../protocol/domain.js';
import { UsageError } from './cliErrors.js';

/**
 * How a flag takes its value: none, a non-empty string, a string that may be empty (`text`), a
 * non-negative integer, a positive integer (1 up, e.g. an event sequence), an integer in a range
 * (`max` inclusive; none: no upper bound but the largest safe integer), or a repeatable non-empty
 * string.
 */
export type FlagKind = 'boolean' | 'string' | 'text' | 'number' | 'positive' | IntegerRange | 'strings';

/** An integer flag's bounds, both inclusive. */
export interface IntegerRange {
  min: number;
  max?: number;
}

/** Flags by name (without the leading `--`). */
export type FlagSpec = Record<string, FlagKind>;

/** A flag's parsed value, by kind. */
export type FlagValue = boolean | string | number | string[];

/** The command line after parsing: the command, its positional arguments and its flags. */
export interface ParsedArgs {
  command: string | undefined;
  positionals: string[];
  flags: Record<string, FlagValue | undefined>;
}

/** Flags every command takes. */
export const GLOBAL_FLAGS: FlagSpec = {
  'data-dir': 'string',
  verbose: 'boolean',
  json: 'boolean',
  help: 'boolean',
};

/** Whether an argument is a flag (`--name`, `-h`); text such as "- item" is an argument. */
export const isFlag = (arg: string): boolean => /^--[A-Za-z]/.test(arg) || /^-[A-Za-z]$/.test(arg);

/**
 * Splits argv into the command name (the first word that is not a flag or a global flag's value)
 * and the rest, so that the rest can be parsed with the command's own flags.
 */
export function splitCommand(argv: string[]): { command: string | undefined; rest: string[] } {
  let commandFlag: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') break;
    if (!isFlag(arg)) {
      // `jetplan --budget 5 demo …`: the flag's value would be taken for the command.
      if (commandFlag) throw new UsageError(`${commandFlag} goes after the command (jetplan <command> ${commandFlag} …)`);
      return { command: arg, rest: [...argv.slice(0, i), ...argv.slice(i + 1)] };
    }
    const kind = GLOBAL_FLAGS[arg === '-h' ? 'help' : splitFlag(arg)[0]];
    if (!kind) commandFlag ??= arg.split('=')[0];
    else if (kind !== 'boolean' && !arg.includes('=')) i++;
  }
  return { command: undefined, rest: argv };
}

/**
 * Strict parsing: `--name value`, `--name=value`, boolean `--name`, `-h` for help, `--` ends
 * flags. Unknown flags, missing values and bad numbers throw a UsageError.
 */
export function parseArgs(command: string | undefined, argv: string[], spec: FlagSpec): ParsedArgs {
  const parsed: ParsedArgs = { command, positionals: [], flags: {} };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      parsed.positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!isFlag(arg)) {
      parsed.positionals.push(arg);
      continue;
    }
    const [name, inline] = splitFlag(arg === '-h' ? '--help' : arg);
    const kind = spec[name];
    if (!kind) throw new UsageError(`unknown flag ${arg.split('=')[0]}`);
    if (kind === 'boolean') {
      if (inline !== undefined) throw new UsageError(`--${name} takes no value`);
      parsed.flags[name] = true;
      continue;
    }
    let value = inline;
    if (value === undefined) {
      const next = argv[i + 1];
      if (next === undefined || /^--[A-Za-z]/.test(next)) throw new UsageError(`--${name} needs a value`);
      value = next;
      i++;
    }
    setValue(parsed, name, kind, value);
  }
  return parsed;
}

function splitFlag(arg: string): [string, string | undefined] {
  const body = arg.replace(/^--?/, '');
  const eq = body.indexOf('=');
  return eq < 0 ? [body, undefined] : [body.slice(0, eq), body.slice(eq + 1)];
}

function setValue(parsed: ParsedArgs, name: string, kind: Exclude<FlagKind, 'boolean'>, value: string): void {
  // Only list flags repeat: a second --data-dir or --session silently winning hides a mistake.
  if (kind !== 'strings' && name in parsed.flags) throw new UsageError(`--${name} given twice`);
  // An empty value is an unset shell variable far more often than a choice: `--session "$S"` must
  // not start a new session, nor `--message-id "$ID"` publish without its idempotency key.
  if (value === '' && (kind === 'string' || kind === 'strings')) throw new UsageError(`--${name} needs a non-empty value`);
  if (kind === 'number' || kind === 'positive' || typeof kind === 'object') {
    parsed.flags[name] = integerValue(name, kind, value);
  } else if (kind === 'strings') {
    const list = (parsed.flags[name] as string[] | undefined) ?? [];
    parsed.flags[name] = [...list, value];
  } else {
    parsed.flags[name] = value;
  }
}

/**
 * A number flag's value. One check and one wording for every bad value of a flag: `0`, `-1` and
 * `1.5` for a positive flag are the same mistake, and must not read as different ones.
 */
function integerValue(name: string, kind: 'number' | 'positive' | IntegerRange, value: string): number {
  const { min, max } = kind === 'number' ? { min: 0 } : kind === 'positive' ? { min: 1 } : kind;
  const n = Number(value);
  if (!/^-?\d+$/.test(value) || n < min || (max !== undefined && n > max)) {
    throw new UsageError(`--${name} expects ${ruleOf(min, max)}, got "${value}"`);
  }
  if (!Number.isSafeInteger(n)) throw new UsageError(`--${name} is too large: ${value}`);
  return n === 0 ? 0 : n; // "-0" is 0
}

/** How an integer range reads in an error. */
function ruleOf(min: number, max: number | undefined): string {
  if (max !== undefined) return `an integer from ${min} to ${max}`;
  if (min === 0) return 'a non-negative integer';
  if (min === 1) return 'a positive integer';
  return `an integer of at least ${min}`;
}

/** A string flag's value, if given. */
export const stringFlag = (args: ParsedArgs, name: string): string | undefined =>
  typeof args.flags[name] === 'string' ? (args.flags[name] as string) : undefined;

/** A number flag's value, if given. */
export const numberFlag = (args: ParsedArgs, name: string): number | undefined =>
  typeof args.flags[name] === 'number' ? (args.flags[name] as number) : undefined;

/** A repeatable flag's values, in order (empty if never given). */
export const listFlag = (args: ParsedArgs, name: string): string[] =>
  Array.isArray(args.flags[name]) ? (args.flags[name] as string[]) : [];

/** Whether a boolean flag was given. */
export const boolFlag = (args: ParsedArgs, name: string): boolean => args.flags[name] === true;

/** The single positional argument a command takes, or a UsageError naming it. */
export function onePositional(args: ParsedArgs, what: string): string {
  if (args.positionals.length === 0) throw new UsageError(`${args.command} needs ${what}`);
  if (args.positionals.length > 1) throw new UsageError(`unexpected argument ${args.positionals[1]}`);
  return args.positionals[0]!;
}

/** The one positional argument, a session id; an invalid one is a usage error. */
export function sessionIdArg(args: ParsedArgs): string {
  return checkedSessionId(onePositional(args, 'a session id'));
}

/**
 * `sessionId`, or a usage error: checked before anything connects, so a bad id is exit 2 whether
 * or not NATS is up (not a connection error).
 */
export function checkedSessionId(sessionId: string): string {
  if (!SessionId.safeParse(sessionId).success) throw new UsageError(`invalid session id "${sessionId}" (1-64 characters of [A-Za-z0-9_-])`);
  return sessionId;
}

/** Rejects positional arguments for commands that take none. */
export function noPositionals(args: ParsedArgs): void {
  if (args.positionals.length > 0) throw new UsageError(`unexpected argument ${args.positionals[0]}`);
}
