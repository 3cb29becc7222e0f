import { z } from 'zod';
import { NeedsClarificationReport, SessionInput, TaskCompletedReport, TaskFailedReport } from '../protocol/inputs.js';
import type { ExecuteTask } from '../protocol/commands.js';
import { DEFAULT_MAX_REPORT_BYTES, fitReport } from './fitReport.js';

/** What an executor reports back for one dispatch. */
export type ExecutorReport =
  | z.infer<typeof TaskCompletedReport>
  | z.infer<typeof TaskFailedReport>
  | z.infer<typeof NeedsClarificationReport>;

/** What a handler decides; the runner adds the task and dispatch ids. */
export type HandlerOutcome =
  | { type: 'completed'; output: string }
  /**
   * `aborted`: the handler gave up on its abort and did not do the task (as the shell executor
   * does for a command it killed). On a stop such a failure is not reported: the command goes
   * back for another executor. Any other failure is the task's, and reported.
   */
  | { type: 'failed'; error: string; retryable?: boolean; aborted?: boolean }
  | { type: 'needsClarification'; question: string };

/** Does the work of one task. `signal` aborts it; the dispatch id is its idempotency key. */
export type TaskHandler = (task: ExecuteTask, tools: { signal: AbortSignal; idempotencyKey: string }) => Promise<HandlerOutcome>;

/** The report message for a handler's outcome. */
export function toReport(task: ExecuteTask, outcome: HandlerOutcome): ExecutorReport {
  const ids = { taskId: task.taskId, dispatchId: task.dispatchId };
  if (outcome.type === 'completed') return { type: 'TaskCompleted', ...ids, output: outcome.output };
  if (outcome.type === 'failed') {
    return { type: 'TaskFailed', ...ids, error: outcome.error, ...(outcome.retryable === undefined ? {} : { retryable: outcome.retryable }) };
  }
  return { type: 'NeedsClarification', ...ids, question: outcome.question };
}

/** A handler's outcome as it must be: checked where it enters, since JavaScript handlers are unchecked. */
const HandlerOutcomeSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('completed'), output: z.string() }),
  z.object({ type: z.literal('failed'), error: z.string(), retryable: z.boolean().optional(), aborted: z.boolean().optional() }),
  z.object({ type: z.literal('needsClarification'), question: z.string() }),
]);

/** What was thrown, as text, whatever it is (an object without a prototype has no toString). */
function describeThrown(err: unknown): string {
  if (err instanceof Error) return err.message;
  try {
    // A plain object says more as JSON than as "[object Object]".
    const text = typeof err === 'object' && err !== null ? JSON.stringify(err) : undefined;
    return text !== undefined && text !== '{}' ? text : String(err);
  } catch {
    return Object.prototype.toString.call(err);
  }
}

/**
 * Runs a handler once: a handler that throws has failed its attempt (retryable); one that returns
 * something other than an outcome (undefined from a branch without `return`, a missing field) has
 * failed it for good, with the reason. Never throws, so the dispatch is never run again for it.
 */
export async function runHandler(handler: TaskHandler, task: ExecuteTask, signal: AbortSignal): Promise<HandlerOutcome> {
  let returned: unknown;
  try {
    returned = await handler(task, { signal, idempotencyKey: task.dispatchId });
  } catch (err) {
    // Thrown after its abort: it gave up, and did not do the task.
    return { type: 'failed', error: `executor error: ${describeThrown(err)}`, retryable: true, ...(signal.aborted ? { aborted: true } : {}) };
  }
  const outcome = HandlerOutcomeSchema.safeParse(returned);
  if (outcome.success) return outcome.data;
  const issue = outcome.error.issues[0];
  const where = issue && issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
  return { type: 'failed', error: `the handler returned an invalid outcome (${where}${issue?.message ?? 'not an outcome'})`, retryable: false };
}

/**
 * The report for an outcome, as the planner will take it: its free text cut to fit a body of
 * `maxBytes` (see fitReport), or a non-retryable failure when the planner would reject it for
 * another reason (an empty question). A rejected report would leave the task running forever,
 * since its message id is then known and every resend is dropped.
 */
export function checkedReport(task: ExecuteTask, outcome: HandlerOutcome, maxBytes: number = DEFAULT_MAX_REPORT_BYTES): ExecutorReport {
  const report = fitReport(toReport(task, outcome), maxBytes);
  const ok = SessionInput.safeParse(report);
  if (ok.success) return report;
  const issue = ok.error.issues[0];
  return toReport(task, {
    type: 'failed',
    error: `executor produced an invalid report (${issue?.path.join('.')}: ${issue?.message})`,
    retryable: false,
  });
}

const ReportSchema = z.discriminatedUnion('type', [TaskCompletedReport, TaskFailedReport, NeedsClarificationReport]);

/** Whether `value` is a report as executors record and send them (the inputs' own schemas). */
export function isExecutorReport(value: unknown): value is ExecutorReport {
  return ReportSchema.safeParse(value).success;
}
