import type { z } from 'zod';
import type { NeedsClarificationReport, TaskCompletedReport, TaskFailedReport } from '../protocol/inputs.js';
import type { ExecuteTask } from '../protocol/commands.js';

/** What an executor reports back for one dispatch. */
export type ExecutorReport =
  | z.infer<typeof TaskCompletedReport>
  | z.infer<typeof TaskFailedReport>
  | z.infer<typeof NeedsClarificationReport>;

/** What a handler decides; the runner adds the task and dispatch ids. */
export type HandlerOutcome =
  | { type: 'completed'; output: string }
  | { type: 'failed'; error: string; retryable?: boolean }
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
