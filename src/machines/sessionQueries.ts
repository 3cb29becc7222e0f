import type { PlannerState, Task, TaskStatus } from '../protocol/domain.js';
import { countItemTokens, type TokenCounter } from '../compaction/tokenCounter.js';
import type { ExecuteTask, PlannerCommand } from '../protocol/commands.js';
import { renderContext } from './sessionMachine.js';
import { taskSnapshot, type SessionState } from './sessionState.js';

export type SessionStatus = PlannerState['status'];
export type SessionPhase = PlannerState['phase'];

/** The session's lifecycle status, read from the statechart's state value. */
export function statusOf(state: SessionState): SessionStatus {
  const value = state.snapshot.value;
  return (typeof value === 'string' ? value : 'active') as SessionStatus;
}

/**
 * Event types that end a session: after one, a session takes no more work (only the answers to late
 * inputs, InputRejected and ReportIgnored, can follow it). A session whose latest event is one of
 * them has ended without folding it.
 */
export const ENDING_EVENT_TYPES: ReadonlySet<string> = new Set(['SessionCompleted', 'SessionFailed', 'SessionCancelled']);

/** Where an active session is: which sub-state of `active`. */
export function phaseOf(state: SessionState): SessionPhase {
  const value = state.snapshot.value;
  if (typeof value === 'object') return (value as { active: SessionPhase }).active ?? 'ready';
  return value === 'idle' ? 'ready' : 'done'; // idle: nothing started yet, ready for a first input
}

/** A task as the read model shows it: its definition plus its actor's state. */
export function taskView(state: SessionState, taskId: string): Task | undefined {
  const snap = taskSnapshot(state, taskId);
  if (!snap) return undefined;
  const { id, description, kind, attachments, attempts, ...rest } = snap.context;
  // Task contexts never hold undefined values (step() drops them), so `rest` is what is set.
  return { id, description, kind, attachments, attempts, status: snap.value as TaskStatus, ...rest };
}

/** The task at the cursor (the next one to run), if any. */
export function currentTask(state: SessionState): Task | undefined {
  const id = state.snapshot.context.order[state.snapshot.context.cursor];
  return id === undefined ? undefined : taskView(state, id);
}

/**
 * The read model `replay` and `status` print. Its context's `tokens` are counted with `counter`
 * (e.g. `bpeTokenCounter`, as the planner counts them); -1 without one, since counting costs.
 */
export function toPlannerState(state: SessionState, counter?: TokenCounter): PlannerState {
  const ctx = state.snapshot.context;
  const current = currentTask(state);
  const phase = phaseOf(state);
  return {
    sessionId: state.sessionId,
    status: statusOf(state),
    phase,
    tasks: ctx.order.map((id) => taskView(state, id)!),
    cursor: ctx.cursor,
    waiting: {
      clarification: phase === 'awaitingClarification' && current ? current.id : null,
      retry:
        phase === 'backoff' && current?.retryAt !== undefined ? { taskId: current.id, dueAt: current.retryAt } : null,
    },
    context: {
      items: ctx.items,
      summary: ctx.items.find((i) => i.slot === 'summary')?.text ?? '',
      tokens: counter ? countItemTokens(ctx.items, counter) : -1,
    },
    config: ctx.config,
    endReason: ctx.endReason,
    version: state.version,
  };
}

/**
 * What the session is waiting on from outside, so a runtime that (re)loads it knows what to do:
 * the ExecuteTask of a running task (re-published when no report came), the open question, and the
 * retry timer. Derived from state, which is why a restart loses none of them.
 */
export function outstanding(state: SessionState): {
  command?: PlannerCommand;
  retry?: { taskId: string; attempt: number; dueAt: number };
} {
  if (statusOf(state) !== 'active') return {};
  const task = currentTask(state);
  if (!task) return {};
  if (task.status === 'Running') return { command: executeTaskFor(state, task) };
  if (task.status === 'NeedsClarification') {
    return { command: { type: 'RequestClarification', sessionId: state.sessionId, taskId: task.id, question: task.question ?? task.description } };
  }
  if (task.status === 'Planned' && task.retryAt !== undefined) {
    return { retry: { taskId: task.id, attempt: task.attempts + 1, dueAt: task.retryAt } };
  }
  return {};
}

function executeTaskFor(state: SessionState, task: Task): ExecuteTask {
  return {
    type: 'ExecuteTask',
    sessionId: state.sessionId,
    taskId: task.id,
    dispatchId: task.dispatchId!,
    attempt: task.attempts,
    kind: task.kind,
    description: task.description,
    attachments: task.attachments,
    context: renderContext(state.snapshot.context.items),
  };
}

/**
 * The dispatch id of a task attempt: unique across sessions, stable, and a valid KV key. With the
 * session's `runId`, unique across runs of one session id too: a session id reused after its log was
 * purged must not repeat an earlier run's ids, which executors' inboxes remember (with the reports
 * they sent for them) and JetStream deduplicates.
 */
export const dispatchIdFor = (sessionId: string, taskId: string, attempt: number, runId?: string | null): string =>
  runId ? `${sessionId}.${runId}.${taskId}.${attempt}` : `${sessionId}.${taskId}.${attempt}`;
