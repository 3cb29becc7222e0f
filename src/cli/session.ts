import type { Metrics } from '../observability/metrics.js';
import { createEmbeddedRuntime, type EmbeddedRuntime } from '../runtime/embeddedRuntime.js';
import type { SessionState } from '../machines/sessionState.js';
import type { AnswerSource } from './answers.js';
import { describeError } from './cliErrors.js';
import type { CliContext } from './command.js';
import { DEFAULT_DATA_DIR } from './context.js';
import { SessionDriver, type Outcome } from './driver.js';
import { startDemoExecutor } from './executor.js';
import { startInspector, type InspectorHandle } from './inspector.js';
import { interruptedExitCode, type CliSignal } from './io.js';
import { stateView, taskCount } from './view.js';
import { needsEscaping, printable } from './printable.js';

/** An open embedded runtime with the demo executor attached. */
export interface DemoRuntime {
  runtime: EmbeddedRuntime;
  stopExecutor: () => Promise<void>;
  inspector?: InspectorHandle;
}

/** Opens the file store in the data dir with the demo executor (CorruptLogError, StoreUnavailableError). */
export async function openDemoRuntime(ctx: CliContext, delayMs: number, inspectPort?: number): Promise<DemoRuntime> {
  const runtime = await createEmbeddedRuntime({ dataDir: ctx.dataDir, logger: ctx.logger });
  if (runtime.recoveredTailBytes > 0) {
    // As replay and sessions say it: the log changed on open, and a damaged record must not pass unseen.
    ctx.err(`jetplan: note: the last ${runtime.recoveredTailBytes} bytes of ${ctx.dataDir}/events.log were incomplete (a crash mid-write, or damage) and were cut; they are kept in ${ctx.dataDir}/events.log.tail-*`);
  }
  try {
    const inspector = inspectPort === undefined ? undefined : await startInspector(runtime.planner, inspectPort);
    if (inspector) ctx.err(`inspector: open ${inspector.url} to watch the statecharts`);
    return { runtime, stopExecutor: await startDemoExecutor(runtime, ctx.dataDir, delayMs), ...(inspector ? { inspector } : {}) };
  } catch (error) {
    await runtime.close();
    throw error;
  }
}

/** Closes what {@link openDemoRuntime} opened: the executor first, so no work is left under way. */
export async function closeDemoRuntime(demo: DemoRuntime): Promise<void> {
  await demo.stopExecutor();
  await demo.runtime.close();
  demo.inspector?.stop();
}

/**
 * Runs a session in the foreground until it finishes, waits for an answer nobody gave, or is
 * interrupted (Ctrl-C / SIGTERM); `begin` starts it (submit, or recover). Closes the runtime and
 * prints the outcome; resolves with the exit code.
 */
export async function driveSession(
  ctx: CliContext,
  demo: DemoRuntime,
  sessionId: string,
  answers: AnswerSource,
  begin: () => Promise<void>,
): Promise<number> {
  const driver = new SessionDriver(demo.runtime, sessionId, ctx);
  let stoppedBy: CliSignal = 'SIGINT';
  const offSignal = ctx.io.onSignal((signal) => {
    stoppedBy = signal;
    driver.interrupt();
    answers.close();
  });
  let outcome: Outcome;
  try {
    await begin();
    outcome = await driver.run(answers);
  } finally {
    offSignal();
    answers.close();
    driver.dispose();
    await closeDemoRuntime(demo);
  }
  // Said rather than dropped in silence: a value meant for a question that never came.
  if (outcome.kind === 'finished' && answers.unused > 0) ctx.err(`jetplan: ${answers.unused} --answer value${answers.unused === 1 ? '' : 's'} not used (no more questions)`);
  return printOutcome(ctx, sessionId, outcome, demo.runtime.metrics, stoppedBy);
}

/** The command that continues a session, with the data dir when it is not the default. */
export function resumeHint(ctx: CliContext, sessionId: string): string {
  const dir = ctx.dataDir === DEFAULT_DATA_DIR ? '' : ` --data-dir ${shellQuote(ctx.dataDir)}`;
  return `jetplan resume ${sessionId}${dir}`;
}

/**
 * `value` as bash's $'…': backslash and quote escaped, newline and tab as \n and \t, and each
 * character printable() escapes as its UTF-8 bytes (\xHH each), which bash gives back whatever
 * the locale (its \u escapes need a UTF-8 one).
 */
function ansiCQuote(value: string): string {
  let out = '';
  for (const ch of value) {
    if (ch === '\\' || ch === "'") out += `\\${ch}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (!needsEscaping(ch)) out += ch;
    else for (const byte of Buffer.from(ch, 'utf8')) out += `\\x${byte.toString(16).padStart(2, '0')}`;
  }
  return `$'${out}'`;
}

/** `value` as one shell word, safe to paste: single-quoted unless it is plainly safe as it is. */
export function shellQuote(value: string): string {
  if (/^[A-Za-z0-9_\/.,:=@%+-]+$/.test(value)) return value;
  // With characters a terminal would act on or hide: bash's $'…', escaped as printable() shows
  // them, so the hint is both safe to print and right to paste.
  if (needsEscaping(value) || /[\n\t]/.test(value)) return ansiCQuote(value);
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

function printOutcome(ctx: CliContext, sessionId: string, outcome: Outcome, metrics: Metrics, stoppedBy: CliSignal): number {
  if (outcome.kind === 'fault') return printFault(ctx, sessionId, outcome.error);
  if (outcome.kind === 'interrupted') {
    if (ctx.json) ctx.out(JSON.stringify({ sessionId, outcome: 'interrupted' }));
    ctx.err(`interrupted; continue with: ${resumeHint(ctx, sessionId)}`);
    return interruptedExitCode(stoppedBy);
  }
  if (outcome.kind === 'waiting') {
    if (ctx.json) {
      const { taskId, question } = outcome;
      ctx.out(JSON.stringify({ sessionId, outcome: 'waiting', taskId, question, state: stateView(outcome.state) }));
    } else {
      ctx.out(`waiting for an answer to ${outcome.taskId}: ${printable(outcome.question)}`);
      ctx.out(`continue with: ${resumeHint(ctx, sessionId)} --answer "<answer>"`);
    }
    return 0;
  }
  return printFinished(ctx, outcome.state, metrics);
}

/**
 * One line for a run the runtime could not go on with (exit 1). What the log holds is intact and
 * the open work is issued again on resume, so the line says how to continue once the cause (a
 * full disk, say) is fixed.
 */
function printFault(ctx: CliContext, sessionId: string, error: Error): number {
  if (ctx.json) ctx.out(JSON.stringify({ sessionId, outcome: 'fault', error: error.message }));
  // The cause is the part a user can act on (ENOSPC, EIO); the message alone says only "reopen".
  const cause = error.cause instanceof Error ? ` (${printable(error.cause.message.replace(/\s*\n\s*/g, ' '))})` : '';
  ctx.err(`${describeError(error).line}${cause}; continue with: ${resumeHint(ctx, sessionId)}`);
  return 1;
}

/** Prints a finished (or already finished) session's summary; exit 0 unless it failed. */
export function printFinished(ctx: CliContext, state: SessionState, metrics?: Metrics): number {
  const view = stateView(state);
  const rates = metrics && { tasksPerSecond: metrics.tasksPerSecond(), completionRate: metrics.completionRate() };
  if (ctx.json) {
    ctx.out(JSON.stringify({ sessionId: view.sessionId, outcome: 'finished', status: view.status, state: view, metrics: rates }));
  } else {
    const extra = rates
      ? ` · ${rates.tasksPerSecond.toFixed(2)} tasks/s · attempts succeeded ${Math.round(rates.completionRate * 100)}%`
      : '';
    const why = view.endReason === null ? '' : ` (${view.endReason})`;
    ctx.out(`status ${view.status}${why} · tasks ${taskCount(view)} completed · ${view.version} events${extra}`);
  }
  return view.status === 'completed' ? 0 : 1;
}
