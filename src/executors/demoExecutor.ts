import type { ExecuteTask } from '../protocol/commands.js';
import type { HandlerOutcome, TaskHandler } from './report.js';

/** Words that make the demo executor ask before acting: irreversible or ambiguous actions. */
const ASK_FIRST = /\b(deploy|publish|delete|send|email|release|choose)\b/i;
/** Words that make it fail its first attempt, so retries with backoff can be seen. */
const FLAKY = /\b(flaky|unreliable|retry)\b/i;

/**
 * The built-in demo executor. Deterministic, so the demo and tests can predict it:
 * - a task that mentions an irreversible action (deploy, publish, delete, send…) asks which
 *   target to use, unless the context already holds the answer to that question;
 * - a task that mentions something flaky fails its first attempt (retryable);
 * - anything else completes with a short output derived from the description.
 * Clarification-kind tasks never reach an executor: the planner asks the human itself.
 */
export const demoHandler: TaskHandler = async (task: ExecuteTask): Promise<HandlerOutcome> => {
  const match = ASK_FIRST.exec(task.description);
  if (match) {
    const question = `Which target should "${match[1]!.toLowerCase()}" use for: ${task.description}`;
    if (!task.context.includes(`Q: ${question}`)) return { type: 'needsClarification', question };
  }
  if (FLAKY.test(task.description) && task.attempt === 1) {
    return { type: 'failed', error: 'transient failure (demo: first attempt of a flaky task)', retryable: true };
  }
  const verb = task.kind === 'ToolCall' ? 'ran' : 'processed';
  const urls = task.attachments.map((a) => a.url).join(', ');
  return { type: 'completed', output: `${verb}: ${task.description}${urls ? ` [${urls}]` : ''}` };
};
