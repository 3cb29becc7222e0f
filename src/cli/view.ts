import { bpeTokenCounter } from '../compaction/index.js';
import { toPlannerState } from '../machines/sessionQueries.js';
import type { SessionState } from '../machines/sessionState.js';
import type { PlannerState, Task } from '../protocol/domain.js';
import type { DomainEvent } from '../protocol/events.js';

/** The read model the CLI prints: toPlannerState with the context's token count filled in. */
export function stateView(state: SessionState): PlannerState {
  return toPlannerState(state, bpeTokenCounter);
}

/** Tasks completed / total, e.g. `3/5`. */
export function taskCount(view: PlannerState): string {
  return `${view.tasks.filter((t) => t.status === 'Completed').length}/${view.tasks.length}`;
}

/** An ISO timestamp, or `-` when there is none. */
export const iso = (ms: number | undefined): string => (ms === undefined ? '-' : new Date(ms).toISOString());

export { printable } from './printable.js';
import { printable } from './printable.js';

const clip = (text: string, max = 60): string => {
  const flat = printable(text.replace(/\s+/g, ' ').trim());
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
};

/**
 * A one-line summary of an event's data, for timelines: printable as a whole (ids come from clients
 * too: a message id may hold any character but a line break).
 */
export function eventSummary(event: DomainEvent): string {
  return printable(summaryOf(event));
}

function summaryOf(event: DomainEvent): string {
  switch (event.type) {
    case 'SessionStarted':
      return `budget ${event.data.config.tokenBudget}, max attempts ${event.data.config.maxAttempts}`;
    case 'TasksPlanned':
      return `${event.data.tasks.length} task${event.data.tasks.length === 1 ? '' : 's'}: ${event.data.tasks.map((t) => t.id).join(', ')}`;
    case 'TaskDispatched':
      return `${event.data.taskId} attempt ${event.data.attempt} (${event.data.kind})`;
    case 'TaskCompleted':
      return `${event.data.taskId}: ${clip(event.data.output)}`;
    case 'TaskFailed':
      return `${event.data.taskId}: ${clip(event.data.error)}${event.data.final ? ' (final)' : ''}`;
    case 'TaskRetryScheduled':
      return `${event.data.taskId} attempt ${event.data.attempt} at ${iso(event.data.dueAt)}`;
    case 'ClarificationRequested':
      return `${event.data.taskId}: ${clip(event.data.question)}`;
    case 'ClarificationProvided':
      return `${event.data.taskId}: ${clip(event.data.answer)}`;
    case 'ContextCompacted':
      return `${event.data.tokensBefore} → ${event.data.tokensAfter} tokens (budget ${event.data.budget})`;
    case 'SessionCompleted':
      return `${event.data.tasks} task${event.data.tasks === 1 ? '' : 's'}`;
    case 'SessionFailed':
    case 'SessionCancelled':
    case 'InputRejected':
      return clip(event.data.reason);
    case 'ReportIgnored':
      return `${event.data.taskId}: ${clip(event.data.reason)}`;
    case 'InputRepeated':
      return `${event.data.messageId} again at sequence ${event.data.streamSequence}${event.data.appliedSequence ? ` (applied at ${event.data.appliedSequence})` : ''}`;
    default:
      return ''; // a type a later version added
  }
}

/** The progress line of an event worth showing while a session runs, if any. */
export function progressLine(event: DomainEvent, state: PlannerState): string | undefined {
  const task = (id: string) => {
    const t = state.tasks.find((x) => x.id === id);
    return t ? `${id} ${clip(t.description, 50)}` : id;
  };
  switch (event.type) {
    case 'TaskDispatched':
      return `▶ ${task(event.data.taskId)}${event.data.attempt > 1 ? ` (attempt ${event.data.attempt})` : ''}`;
    case 'TaskCompleted':
      return `✔ ${task(event.data.taskId)} → ${clip(event.data.output)}`;
    case 'TaskFailed':
      return `✖ ${task(event.data.taskId)}: ${clip(event.data.error)}${event.data.final ? ' (giving up)' : ''}`;
    case 'TaskRetryScheduled':
      return `✖ ${task(event.data.taskId)}: retry (attempt ${event.data.attempt}) at ${iso(event.data.dueAt)}`;
    case 'ClarificationRequested': {
      const asked = state.tasks.find((t) => t.id === event.data.taskId)?.description === event.data.question;
      const question = printable(event.data.question);
      return asked ? `? ${event.data.taskId} ${question}` : `? ${task(event.data.taskId)}: ${question}`;
    }
    case 'ClarificationProvided':
      return `? ${task(event.data.taskId)}: answered "${clip(event.data.answer)}"`;
    case 'ContextCompacted':
      return `✂ context compacted: ${event.data.tokensBefore} → ${event.data.tokensAfter} tokens (${event.data.folded.length} folded)`;
    case 'InputRejected':
      return `! input rejected: ${clip(event.data.reason)}`;
    default:
      return undefined;
  }
}

function taskLine(t: Task): string {
  const detail = t.result ?? t.error ?? (t.question ? `? ${t.question}` : '');
  const answer = t.answer ? ` (answer: ${clip(t.answer, 40)})` : '';
  return `  ${t.id}  ${t.status}  attempts ${t.attempts}  ${t.kind}  ${clip(t.description, 50)}${detail ? ` → ${clip(detail)}` : ''}${answer}`;
}

/** The rebuilt state as text: status, config, context and each task. */
export function stateLines(view: PlannerState): string[] {
  const c = view.config;
  return [
    `session ${view.sessionId}  status ${view.status}${view.endReason === null ? '' : ` (${clip(view.endReason, 500)})`}  phase ${view.phase}  version ${view.version}`,
    c
      ? `config: token budget ${c.tokenBudget}, max attempts ${c.maxAttempts}, backoff ${c.backoff.baseMs}ms ×${c.backoff.factor} (max ${c.backoff.maxMs}ms), profile ${c.profile}`
      : 'config: none (the session has not started: every input so far was rejected)',
    `context: ${view.context.items.length} items, ${view.context.tokens} tokens`,
    `tasks (${taskCount(view)} completed):`,
    ...view.tasks.map(taskLine),
  ];
}

/** One timeline line: sequence, ISO time, type and a short summary. */
export const timelineLine = (e: DomainEvent): string =>
  `  ${String(e.sequence).padStart(4)}  ${iso(e.timestamp)}  ${e.type.padEnd(22)}  ${eventSummary(e)}`;
