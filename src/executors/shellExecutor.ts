/**
 * A shell executor that runs no shell: a ToolCall task's command (the first backtick code span of
 * its description, else the whole description) is split into argv with a small quote-aware parser
 * and spawned directly, only if the program is on the allow-list, with a timeout and an output cap.
 */
import { spawn } from 'node:child_process';
import { isAbsolute, normalize } from 'node:path';
import type { ExecuteTask } from '../protocol/commands.js';
import type { HandlerOutcome, TaskHandler } from './report.js';

export interface ShellHandlerOptions {
  /** Program names (basenames) that may run, e.g. ['echo', 'ls']. */
  allow: string[];
  /** Default 10_000. */
  timeoutMs?: number;
  /** Cap on stdout + stderr kept, bytes (default 64 KiB). */
  maxOutputBytes?: number;
  /** Working directory (default the process's). */
  cwd?: string;
}

const SHELL_META = /[;|&$><`]/;
/** Reports carry at most 64 Ki characters of output. */
const MAX_REPORT_TEXT = 64 * 1024;

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
  return argv;
}

/**
 * Whether argv[0] may run. A bare name is looked up on PATH and must be on the list; a name with a
 * slash must be on the list exactly as written (an absolute path the operator allowed). Matching
 * the basename of a path would let `/tmp/x/echo` or `./echo` run any file called `echo`.
 * The list should not hold programs that run other programs (env, xargs, sh, find).
 */
export function isAllowed(program: string, allow: ReadonlySet<string>): boolean {
  if (!program.includes('/')) return allow.has(program);
  return isAbsolute(program) && normalize(program) === program && allow.has(program);
}

export function createShellHandler(options: ShellHandlerOptions): TaskHandler {
  const allow = new Set(options.allow.map((p) => p.trim()).filter((p) => p.length > 0));
  const timeoutMs = options.timeoutMs ?? 10_000;
  const maxOutputBytes = options.maxOutputBytes ?? 64 * 1024;

  return async (task: ExecuteTask, tools): Promise<HandlerOutcome> => {
    if (task.kind !== 'ToolCall') {
      const short = task.description.length > 200 ? `${task.description.slice(0, 200)}…` : task.description;
      return { type: 'completed', output: `processed: ${short}` };
    }
    const command = commandOf(task.description);
    let argv: string[];
    try {
      argv = parseArgv(command);
    } catch (err) {
      return { type: 'failed', error: (err as Error).message, retryable: false };
    }
    if (argv.length === 0) return { type: 'failed', error: 'empty command', retryable: false };
    const program = argv[0]!;
    if (!isAllowed(program, allow)) {
      const list = [...allow].sort().join(', ') || '(empty)';
      return { type: 'failed', error: `program "${program}" is not allowed (allowed: ${list})`, retryable: false };
    }
    return run(argv, { timeoutMs, maxOutputBytes, signal: tools.signal, ...(options.cwd ? { cwd: options.cwd } : {}) });
  };
}

interface RunOptions {
  timeoutMs: number;
  maxOutputBytes: number;
  signal: AbortSignal;
  cwd?: string;
}

function run(argv: string[], o: RunOptions): Promise<HandlerOutcome> {
  return new Promise<HandlerOutcome>((resolve) => {
    const chunks: Buffer[] = [];
    let kept = 0;
    let truncated = false;
    let timedOut = false;
    let settled = false;
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: ['ignore', 'pipe', 'pipe'],
      shell: false,
      ...(o.cwd ? { cwd: o.cwd } : {}),
    });
    const collect = (chunk: Buffer): void => {
      const room = o.maxOutputBytes - kept;
      if (room <= 0) {
        truncated = true;
        return;
      }
      if (chunk.length > room) {
        truncated = true;
        chunk = chunk.subarray(0, room);
      }
      chunks.push(chunk);
      kept += chunk.length;
    };
    const stderrChunks: Buffer[] = [];
    child.stdout.on('data', collect);
    child.stderr.on('data', (chunk: Buffer) => {
      collect(chunk);
      stderrChunks.push(chunk);
      // Only the tail of stderr matters for errors.
      while (stderrChunks.length > 1 && Buffer.concat(stderrChunks).length > 4_096) stderrChunks.shift();
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, o.timeoutMs);
    const onAbort = (): void => {
      child.kill('SIGKILL');
    };
    o.signal.addEventListener('abort', onAbort, { once: true });
    const finish = (outcome: HandlerOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      o.signal.removeEventListener('abort', onAbort);
      resolve(outcome);
    };
    child.once('error', (err: NodeJS.ErrnoException) => {
      const retryable = err.code !== 'ENOENT' && err.code !== 'EACCES';
      finish({ type: 'failed', error: `cannot run ${argv[0]}: ${err.message}`, retryable });
    });
    child.once('close', (code, signal) => {
      if (timedOut) {
        finish({ type: 'failed', error: `timed out after ${o.timeoutMs} ms`, retryable: false });
        return;
      }
      if (o.signal.aborted) {
        finish({ type: 'failed', error: 'aborted', retryable: true });
        return;
      }
      let output = Buffer.concat(chunks).toString('utf8');
      if (truncated || output.length > MAX_REPORT_TEXT) {
        const note = `\n[output truncated at ${Math.min(o.maxOutputBytes, kept)} bytes]`;
        output = output.slice(0, MAX_REPORT_TEXT - note.length) + note;
      }
      if (code === 0) {
        finish({ type: 'completed', output });
        return;
      }
      const tail = Buffer.concat(stderrChunks).toString('utf8').trim().slice(-1_000);
      const how = code === null ? `was killed by ${signal ?? 'a signal'}` : `exited with code ${code}`;
      finish({ type: 'failed', error: `${argv[0]} ${how}${tail ? `: ${tail}` : ''}`, retryable: false });
    });
  });
}
