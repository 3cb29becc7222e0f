import type { NodeKind } from './domain.js';
import type { OutboxCommand } from './commands.js';

/** The default subject prefix; every subject jetplan uses starts with it. */
export const DEFAULT_PREFIX = 'jetplan';

/** Subject names, the same on the in-process bus and on NATS. */
export function subjectsFor(prefix: string = DEFAULT_PREFIX) {
  return {
    /** Inputs into one session: clients and executors publish here. */
    input: (sessionId: string) => `${prefix}.in.${sessionId}`,
    allInputs: `${prefix}.in.>`,
    /** One session's domain events (the event store). */
    events: (sessionId: string) => `${prefix}.ev.${sessionId}`,
    allEvents: `${prefix}.ev.>`,
    /** Work for executors of one kind. */
    exec: (kind: Exclude<NodeKind, 'Clarification'>, sessionId: string) => `${prefix}.exec.${kind.toLowerCase()}.${sessionId}`,
    allExec: `${prefix}.exec.>`,
    /** Questions for the human, on the embedded bus (over NATS they are ClarificationRequested events). */
    clarify: (sessionId: string) => `${prefix}.clarify.${sessionId}`,
    allClarify: `${prefix}.clarify.>`,
  };
}
export type Subjects = ReturnType<typeof subjectsFor>;

/**
 * The session an input subject (`<prefix>.in.<sessionId>`) names: everything after `<prefix>.in.`,
 * so a subject with more tokens (`<prefix>.in.a.b`) names none that is valid, rather than `b`.
 * `subject` must start with that prefix (the input consumer's filter sees to it).
 */
export const sessionOfInputSubject = (prefix: string, subject: string): string => subject.slice(prefix.length + 4);

/** Where an outbox command is published. */
export function commandSubject(subjects: Subjects, entry: OutboxCommand): string {
  const c = entry.command;
  if (c.type === 'RequestClarification') return subjects.clarify(c.sessionId);
  if (c.kind === 'Clarification') throw new Error(`task ${c.taskId}: Clarification tasks never go to executors`);
  return subjects.exec(c.kind, c.sessionId);
}
