/**
 * A shell executor that runs no shell: a ToolCall task's command (the first backtick code span of
 * its description, else the whole description) is split into argv with a small quote-aware parser
 * and spawned directly, only if the program is on the allow-list, with a timeout and an output cap.
 * The allow-list is resolved to absolute paths once, at startup (see shellPrograms.ts).
 */
import { statSync } from 'node:fs';
import { isAbsolute, normalize } from 'node:path';
import { ShellConfigError } from '../errors.js';
import type { ExecuteTask } from '../protocol/commands.js';
import type { HandlerOutcome, TaskHandler } from './report.js';
import { runProgram } from './runProcess.js';
import { resolvePrograms } from './shellPrograms.js';

export { isExecCapable } from './shellPrograms.js';

/** Options of {@link createShellHandler}. */
export interface ShellHandlerOptions {
  /** Programs that may run: bare names (looked up on PATH once, at startup) or absolute paths. */
  allow: string[];
  /**
   * Accept programs that can run other programs through their arguments (sh, env, sed, awk, tar,
   * find, git, interpreters…). They make the allow-list moot: only inside a sandbox. Default false.
   */
  allowExecCapable?: boolean;
  /** Where PATH, HOME and LANG come from (default process.env); children get nothing else. */
  env?: NodeJS.ProcessEnv;
  /** Default 10_000. */
  timeoutMs?: number;
  /**
   * Cap on stdout + stderr kept, bytes (default 64 KiB). Not the report's limit: JSON escaping can
   * make 64 KiB of output a larger body (a newline is 2 bytes there), so the report is then cut
   * again to fit the planner's input limit, with a marker (see fitReport.ts). A smaller default
   * could not leave room for every output, as escapes take up to 6 bytes a byte.
   */
  maxOutputBytes?: number;
  /** Working directory (default the process's). */
  cwd?: string;
}

const SHELL_META = /[;|&$><`]/;

/** The command of a task: its first `code span`, else the description. */
export function commandOf(description: string): string {
  const span = /`([^`]+)`/.exec(description);
  return (span ? span[1]! : description).trim();
}

/** A command that uses shell syntax, which the shell executor never interprets. */
export class ShellSyntaxError extends Error {
  override readonly name = 'ShellSyntaxError';
}

/**
 * Splits a command line into argv: whitespace separates, single quotes are literal, double quotes
 * group (with \" and \\ escapes), a backslash outside quotes escapes the next character. Throws
 * ShellSyntaxError on shell metacharacters (; | & $ > < `) anywhere, quoted or not: nothing would
 * be interpreted, but a command that looks like shell syntax is rejected rather than half-run.
 */
/** Linux's limit of one argument's length (MAX_ARG_STRLEN, 32 pages), bytes with its NUL. */
const MAX_ARG_BYTES = 128 * 1024;

export function parseArgv(command: string): string[] {
  if (SHELL_META.test(command)) throw new ShellSyntaxError('shell syntax is not allowed');
  const argv: string[] = [];
  let current = '';
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < command.length; i++) {
    const c = command[i]!;
    if (quote === "'") {
      if (c === "'") quote = null;
      else current += c;
      continue;
    }
    if (quote === '"') {
      if (c === '"') quote = null;
      else if (c === '\\' && (command[i + 1] === '"' || command[i + 1] === '\\')) current += command[++i];
      else current += c;
      continue;
    }
    if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === '\\') {
      if (i + 1 < command.length) current += command[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) argv.push(current);
      current = '';
      inWord = false;
    } else {
      current += c;
      inWord = true;
    }
  }
  if (quote) throw new ShellSyntaxError(`unterminated ${quote} quote`);
  if (inWord) argv.push(current);
  // What no program can be given (a NUL ends a C string; Linux caps one argument at 128 KiB): refused
  // here as the task's fault, not thrown by spawn as an executor error that would be retried.
  if (argv.some((arg) => arg.includes('\u0000'))) throw new ShellSyntaxError('a NUL character in the command');
  if (argv.some((arg) => Buffer.byteLength(arg) >= MAX_ARG_BYTES)) throw new ShellSyntaxError(`an argument of ${MAX_ARG_BYTES} bytes or more`);
  return argv;
}

/**
 * Whether argv[0] may run. A bare name must be on the list (it runs the path it resolved to at
 * startup, never a fresh PATH lookup); a name with a slash must be on the list exactly as written (an absolute path the operator allowed). Matching
 * the basename of a path would let `/tmp/x/echo` or `./echo` run any file called `echo`.
 * Programs that run other programs (env, xargs, sh, find, sed…) are refused at startup.
 */
export function isAllowed(program: string, allow: ReadonlySet<string>): boolean {
  if (!program.includes('/')) return allow.has(program);
  return isAbsolute(program) && normalize(program) === program && allow.has(program);
}

/**
 * A handler running ToolCall commands from the allow-list (Processing tasks complete with a short
 * echo). Throws ShellConfigError at once when an allowed program is not found, or can run other
 * programs and `allowExecCapable` is not set. Children run with only PATH (the directories of the
 * allowed programs), HOME and LANG in their environment.
 */
export function createShellHandler(options: ShellHandlerOptions): TaskHandler {
  // Checked now: a missing one made every command fail as "cannot run …: spawn /bin/sh ENOENT".
  if (options.cwd !== undefined && !isDirectory(options.cwd)) throw new ShellConfigError(`shell executor: cwd ${options.cwd} is not a directory`);
  const allow = new Set(options.allow.map((p) => p.trim()).filter((p) => p.length > 0));
  const programs = resolvePrograms([...allow], { allowExecCapable: options.allowExecCapable ?? false, env: options.env ?? process.env });
  const timeoutMs = options.timeoutMs ?? 10_000;
  const maxOutputBytes = options.maxOutputBytes ?? 64 * 1024;

  return async (task: ExecuteTask, tools): Promise<HandlerOutcome> => {
    if (task.kind !== 'ToolCall') {
      const short = task.description.length > 200 ? `${task.description.slice(0, 200)}…` : task.description;
      return { type: 'completed', output: `processed: ${short}` };
    }
    let argv: string[];
    try {
      argv = parseArgv(commandOf(task.description));
    } catch (err) {
      return { type: 'failed', error: (err as Error).message, retryable: false };
    }
    if (argv.length === 0) return { type: 'failed', error: 'empty command', retryable: false };
    const program = argv[0]!;
    if (!isAllowed(program, allow)) {
      const list = [...allow].sort().join(', ') || '(empty)';
      return { type: 'failed', error: `program "${program}" is not allowed (allowed: ${list})`, retryable: false };
    }
    return runProgram({
      file: programs.paths.get(program)!,
      args: argv.slice(1),
      name: program,
      env: programs.env,
      timeoutMs,
      maxOutputBytes,
      signal: tools.signal,
      ...(options.cwd ? { cwd: options.cwd } : {}),
    });
  };
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
