/**
 * Checks a client command makes before publishing what the service would only reject: without
 * them the CLI would print success for an input that ends as InputRejected in the session's log.
 * The service still decides (the state may change between the check and the publish); these only
 * catch the mistakes that are already certain. A retry with the message id of an input the session
 * already applied is let through: it is an idempotent no-op, and its caller expects success.
 */
import type { JetplanClient } from '../../../nats/client.js';
import { isSessionNotFoundError } from '../../../errors.js';
import type { PlannerState } from '../../../protocol/domain.js';
import { CliError } from '../../cliErrors.js';

const ENDED = new Set(['completed', 'failed', 'cancelled']);

/**
 * Runs `check` on the session's state; a refusal stands unless `messageId` was applied already (a
 * retry), and then only if it was accepted: a retry of a rejected input gets its rejection.
 */
async function refuseUnlessRetry(
  client: JetplanClient,
  sessionId: string,
  messageId: string | undefined,
  check: (state: PlannerState) => string | undefined,
): Promise<void> {
  const refusal = check(await client.status(sessionId));
  if (refusal === undefined) return;
  if (messageId !== undefined) {
    const { events } = await client.replay(sessionId);
    const caused = events.filter((e) => e.causationId === messageId);
    const rejection = caused.find((e) => e.type === 'InputRejected');
    if (rejection) throw new CliError(`input ${messageId} was rejected: ${(rejection.data as { reason: string }).reason}`);
    if (caused.length > 0) return;
  }
  throw new CliError(refusal);
}

/**
 * A session that takes a cancel: one that has not ended. A session that has not started is refused
 * only when no input for it is waiting either: `submit` then `cancel` must work while the service
 * is behind (the two are applied in order).
 */
export async function assertCancellable(client: JetplanClient, sessionId: string, messageId?: string): Promise<void> {
  let idle = false;
  try {
    await refuseUnlessRetry(client, sessionId, messageId, (state) => {
      idle = state.status === 'idle';
      return ENDED.has(state.status) ? `session ${sessionId} is ${state.status}` : undefined;
    });
  } catch (err) {
    if (!isSessionNotFoundError(err) || !(await client.hasInput(sessionId))) throw err;
  }
  if (idle && !(await inputWaits(client, sessionId))) throw new CliError(`session ${sessionId} has not started (every input so far was rejected)`);
}

/** Whether an input newer than every one the session has rejected (or known as a repeat) is waiting for the service. */
async function inputWaits(client: JetplanClient, sessionId: string): Promise<boolean> {
  const { events } = await client.replay(sessionId);
  let handled = 0;
  for (const e of events) {
    if (e.type === 'InputRejected') handled = Math.max(handled, e.data.streamSequence ?? 0);
    else if (e.type === 'InputRepeated') handled = Math.max(handled, e.data.streamSequence);
  }
  return ((await client.lastInputSequence(sessionId)) ?? 0) > handled;
}

/** A task waiting for an answer in a session that is still open. */
export function assertAnswerable(client: JetplanClient, sessionId: string, taskId: string, messageId?: string): Promise<void> {
  return refuseUnlessRetry(client, sessionId, messageId, (state) => {
    if (ENDED.has(state.status)) return `session ${sessionId} is ${state.status}`;
    if (state.status === 'idle') return `session ${sessionId} has not started (every input so far was rejected), so it has no task ${taskId}`;
    const task = state.tasks.find((t) => t.id === taskId);
    if (!task) return `session ${sessionId} has no task ${taskId}`;
    return task.status === 'NeedsClarification' ? undefined : `task ${taskId} is not waiting for clarification (it is ${task.status})`;
  });
}

/** A session that takes more input: a new one, or one that has not ended. */
export async function assertOpenOrNew(client: JetplanClient, sessionId: string, messageId?: string): Promise<void> {
  try {
    await refuseUnlessRetry(client, sessionId, messageId, (state) =>
      ENDED.has(state.status) ? `session ${sessionId} is ${state.status}; submit to a new session` : undefined,
    );
  } catch (err) {
    if (!isSessionNotFoundError(err)) throw err;
  }
}
