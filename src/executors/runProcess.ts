/**
 * Runs one program for the shell executor in its own process group, so a timeout, an abort, its
 * own exit or the executor's death takes down everything it started, and a grandchild that keeps
 * the output pipes open cannot hold up the report.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import type { HandlerOutcome } from './report.js';

/** Reports carry at most 64 Ki characters of output. */
const MAX_REPORT_TEXT = 64 * 1024;
/**
 * How long the output pipes may stay open after the program exits: long enough to read what it
 * wrote before exiting, short enough that a grandchild in another process group holding the pipe
 * (it escaped the group kill with setsid) does not hang the task.
 */
const PIPE_GRACE_MS = 250;

/** What {@link runProgram} runs and how. */
export interface RunOptions {
  /** The absolute path to run. */
  file: string;
  args: string[];
  /** The program as the task wrote it, for messages. */
  name: string;
  /** The child's whole environment. */
  env: Record<string, string>;
  timeoutMs: number;
  maxOutputBytes: number;
  signal: AbortSignal;
  cwd?: string;
}

const ABORTED: HandlerOutcome = { type: 'failed', error: 'aborted', retryable: true, aborted: true };

/** Keeps the first `max` bytes of stdout + stderr, and the last ~4 KiB of stderr for errors. */
function outputCollector(max: number) {
  const chunks: Buffer[] = [];
  const stderrChunks: Buffer[] = [];
  let kept = 0;
  let truncated = false;
  const collect = (chunk: Buffer): void => {
    const room = max - kept;
    if (chunk.length > room) {
      truncated = true;
      chunk = chunk.subarray(0, Math.max(0, room));
    }
    if (chunk.length === 0) return;
    chunks.push(chunk);
    kept += chunk.length;
  };
  return {
    stdout: collect,
    stderr(chunk: Buffer): void {
      collect(chunk);
      stderrChunks.push(chunk);
      while (stderrChunks.length > 1 && Buffer.concat(stderrChunks).length > 4_096) stderrChunks.shift();
    },
    text(): string {
      const output = Buffer.concat(chunks).toString('utf8');
      if (!truncated && output.length <= MAX_REPORT_TEXT) return output;
      // Cut to what a report carries, whatever maxOutputBytes kept: the note says what is left.
      const body = output.slice(0, MAX_REPORT_TEXT - 64);
      return `${body}\n[output truncated at ${Buffer.byteLength(body)} bytes]`;
    },
    stderrTail: (): string => Buffer.concat(stderrChunks).toString('utf8').trim().slice(-1_000),
  };
}

/** SIGKILLs a whole process group; one already gone is fine. */
function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch (err) {
    // ESRCH: nobody left. EPERM: macOS answers so for a group of zombies only.
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ESRCH' && code !== 'EPERM') throw err;
  }
}

/**
 * A watchdog for the program's process group: a small shell that waits for EOF on a pipe whose
 * other end only this process holds, then SIGKILLs the group. The pipe closes however the executor
 * ends, SIGKILL and crashes included, so a program never outlives its executor to run on beside
 * the redelivered attempt. Killed itself when the program ends. None on Windows (no groups).
 */
function startWatchdog(pgid: number): (() => void) | undefined {
  if (process.platform === 'win32') return undefined;
  const watchdog = spawn('/bin/sh', ['-c', 'read -r _; kill -KILL "-$1" 2>/dev/null', 'jetplan-watchdog', String(pgid)], {
    stdio: ['pipe', 'ignore', 'ignore'],
    // Its own group: a Ctrl-C to the executor's terminal must not take the watchdog down first.
    detached: true,
  });
  watchdog.on('error', () => {}); // no /bin/sh: the program just runs unwatched
  watchdog.stdin.on('error', () => {});
  watchdog.unref();
  (watchdog.stdin as unknown as { unref?: () => void }).unref?.();
  return () => {
    watchdog.kill('SIGKILL');
    watchdog.stdin.destroy();
  };
}

/**
 * Spawns the program in a new process group, held back until the caller writes a line to its
 * stdin: `/bin/sh` reads that line, then `exec`s the program in its place (same pid and group,
 * argv passed as arguments, never parsed by the shell). Why: the watchdog can only be started once
 * the group exists, and an executor SIGKILLed between the two spawns would otherwise leave a
 * program running unwatched, beside the attempt redelivered to another executor. Held, a program
 * starts only once its watchdog is armed. On Windows (no watchdog) it is spawned directly.
 */
export function spawnHeld(o: RunOptions): ChildProcessByStdio<Writable | null, Readable, Readable> {
  const options = { shell: false, detached: true, env: o.env, ...(o.cwd ? { cwd: o.cwd } : {}) };
  if (process.platform === 'win32') return spawn(o.file, o.args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
  // 125: the line never came (the executor is gone); nobody reads that exit code. The shell exports
  // a PWD of its own: unset, so the program gets `o.env` (a PWD given there is the real cwd).
  const script = `read -r _ || exit 125; ${'PWD' in o.env ? '' : 'unset PWD; '}exec "$0" "$@"`;
  return spawn('/bin/sh', ['-c', script, o.file, ...o.args], { ...options, stdio: ['pipe', 'pipe', 'pipe'] });
}

/** How the program ended, decided when it exited (not when its pipes closed). */
interface Ending {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  aborted: boolean;
}

function outcomeOf(o: RunOptions, end: Ending, output: ReturnType<typeof outputCollector>): HandlerOutcome {
  // An exit 0 is a success even if a timeout or abort raced it: the work was done.
  if (end.code === 0) return { type: 'completed', output: output.text() };
  if (end.timedOut) return { type: 'failed', error: `timed out after ${o.timeoutMs} ms`, retryable: false };
  if (end.aborted) return ABORTED;
  const tail = output.stderrTail();
  const how = end.code === null ? `was killed by ${end.signal ?? 'a signal'}` : `exited with code ${end.code}`;
  return { type: 'failed', error: `${o.name} ${how}${tail ? `: ${tail}` : ''}`, retryable: false };
}

/** Calls `done` once the output pipes close, or after a grace period with the pipes destroyed. */
function afterPipesClose(child: ChildProcessByStdio<Writable | null, Readable, Readable>, done: () => void): void {
  const grace = setTimeout(() => {
    child.stdout.destroy();
    child.stderr.destroy();
    done();
  }, PIPE_GRACE_MS);
  child.once('close', () => {
    clearTimeout(grace);
    done();
  });
}

/**
 * Runs the program without a shell, in a new process group (`detached`), and reports its outcome.
 * A timeout or abort SIGKILLs the group; so does the program's exit, so nothing it left running
 * in the background outlives the task. An already-aborted signal runs nothing.
 */
export function runProgram(o: RunOptions): Promise<HandlerOutcome> {
  if (o.signal.aborted) return Promise.resolve(ABORTED);
  return new Promise<HandlerOutcome>((resolve) => {
    const output = outputCollector(o.maxOutputBytes);
    let child: ReturnType<typeof spawnHeld>;
    try {
      child = spawnHeld(o);
    } catch (err) {
      // Thrown at once. E2BIG (the arguments too long together) is the same on every attempt;
      // EAGAIN or ENOMEM (no process to be had just now) may pass.
      const code = (err as NodeJS.ErrnoException).code;
      resolve({ type: 'failed', error: `cannot run ${o.name}: ${(err as Error).message}`, retryable: code === 'EAGAIN' || code === 'ENOMEM' });
      return;
    }
    const stopWatchdog = child.pid === undefined ? undefined : startWatchdog(child.pid);
    // Armed: the program may start. An executor that died before this line leaves a holder that
    // reads EOF and exits without running it.
    child.stdin?.on('error', () => {}); // a holder already gone (spawn failed): its 'error'/'exit' tell
    child.stdin?.end('go\n');
    let timedOut = false;
    let settled = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid);
    }, o.timeoutMs);
    const onAbort = (): void => killGroup(child.pid);
    o.signal.addEventListener('abort', onAbort, { once: true });
    const finish = (outcome: HandlerOutcome): void => {
      if (settled) return;
      settled = true;
      stopWatchdog?.();
      clearTimeout(timer);
      o.signal.removeEventListener('abort', onAbort);
      resolve(outcome);
    };
    child.stdout.on('data', output.stdout);
    child.stderr.on('data', output.stderr);
    child.once('error', (err: NodeJS.ErrnoException) => {
      const retryable = err.code !== 'ENOENT' && err.code !== 'EACCES';
      finish({ type: 'failed', error: `cannot run ${o.name}: ${err.message}`, retryable });
    });
    child.once('exit', (code, signal) => {
      const end: Ending = { code, signal, timedOut, aborted: o.signal.aborted };
      clearTimeout(timer);
      o.signal.removeEventListener('abort', onAbort);
      killGroup(child.pid);
      afterPipesClose(child, () => finish(outcomeOf(o, end, output)));
    });
  });
}
