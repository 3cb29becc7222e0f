import { z } from 'zod';
import { PlannerConfig } from './domain.js';

/** The longest text or answer, in characters. */
export const MAX_TEXT = 64 * 1024;

/** Messages into the planner (clients, executors and the retry timer). Commands are imperative. */
export const SubmitInput = z.object({
  type: z.literal('SubmitInput'),
  text: z.string().max(MAX_TEXT),
  config: PlannerConfig.partial().optional(),
});
export const ProvideClarification = z.object({
  type: z.literal('ProvideClarification'),
  taskId: z.string().min(1),
  // Blank is no answer: the text SubmitInput refuses as having nothing to plan is refused here too.
  answer: z.string().min(1).max(MAX_TEXT).refine((a) => a.trim() !== '', 'must not be blank'),
});
export const CancelSession = z.object({ type: z.literal('CancelSession'), reason: z.string().optional() });
export const TaskCompletedReport = z.object({
  type: z.literal('TaskCompleted'),
  taskId: z.string().min(1),
  dispatchId: z.string().min(1),
  output: z.string().max(MAX_TEXT),
});
export const TaskFailedReport = z.object({
  type: z.literal('TaskFailed'),
  taskId: z.string().min(1),
  dispatchId: z.string().min(1),
  error: z.string(),
  retryable: z.boolean().optional(),
});
export const NeedsClarificationReport = z.object({
  type: z.literal('NeedsClarification'),
  taskId: z.string().min(1),
  dispatchId: z.string().min(1),
  question: z.string().min(1),
});
/** Sent by the runtime's retry scheduler when a TaskRetryScheduled timer is due. */
export const RetryDue = z.object({
  type: z.literal('RetryDue'),
  taskId: z.string().min(1),
  attempt: z.number().int().positive(),
});

export const SessionInput = z.discriminatedUnion('type', [
  SubmitInput,
  ProvideClarification,
  CancelSession,
  TaskCompletedReport,
  TaskFailedReport,
  NeedsClarificationReport,
  RetryDue,
]);
export type SessionInput = z.infer<typeof SessionInput>;
export type InputType = SessionInput['type'];

/** Whether `type` names an input a client may send (RetryDue is the planner's own). */
export function isInputType(type: string): type is InputType {
  return type !== 'RetryDue' && SessionInput.options.some((o) => o.shape.type.value === type);
}

/**
 * What arrives with every input: the decider is pure, so time and ids come from here.
 * `messageId` is the input's idempotency key (Nats-Msg-Id over NATS).
 */
export interface InputMeta {
  messageId: string;
  now: number;
  correlationId?: string;
  /**
   * Position of the message on its transport (its stream sequence): recorded on the events it
   * causes (`inputSequence`) and quoted by InputRejected.
   */
  streamSequence?: number;
}

/**
 * Message id prefixes jetplan uses for the ids it makes: `in.<stream seq>` for an input published
 * without a `Nats-Msg-Id`, `retry.<dispatchId>` for a retry timer's input (the dispatch id of the
 * attempt it is due for), `recover.<session>` for a recovery's republished commands. A client id
 * with one of them could be taken for one of those inputs (and that input for a repeat of it): the
 * service rejects it.
 */
export const RESERVED_MESSAGE_ID_PREFIXES: readonly string[] = Object.freeze(['in.', 'retry.', 'recover.']);

/**
 * Prefixes of the ids executors and the service give reports: `report.<dispatchId>`, and
 * `refused.<dispatchId>` for a command NATS refused. Only a report of that very dispatch may carry
 * one (or one with more after it: `report.<dispatchId>.2`): another input under it would make the
 * broker drop the real report as a duplicate.
 */
export const REPORT_MESSAGE_ID_PREFIXES: readonly string[] = Object.freeze(['report.', 'refused.']);

/**
 * The longest message id or correlation id an input may carry, characters: each is copied into
 * every event the input causes (envelope and headers), so a huge one would make those events
 * larger than the stream takes, and the input could not even be rejected.
 */
export const MAX_HEADER_ID_CHARS = 1_024;

/** The problem of an id over {@link MAX_HEADER_ID_CHARS}. */
export const overlongId = (what: string, id: string): string =>
  `${what} is ${id.length} characters, over the ${MAX_HEADER_ID_CHARS} it may have (it is copied into every event the input causes)`;

/**
 * Why a client's message id cannot be used for `input` (a reserved prefix), or undefined. `input`
 * is what the body holds, if it could be read: a report may carry its own dispatch's report id.
 */
export function reservedMessageIdProblem(messageId: string, input?: { type: string; dispatchId?: string }): string | undefined {
  if (messageId.length > MAX_HEADER_ID_CHARS) return overlongId('message id', messageId);
  const prefix = RESERVED_MESSAGE_ID_PREFIXES.find((p) => messageId.startsWith(p));
  const all = [...RESERVED_MESSAGE_ID_PREFIXES, ...REPORT_MESSAGE_ID_PREFIXES].join(', ');
  if (prefix !== undefined) return `message id ${JSON.stringify(messageId)} starts with "${prefix}", which is reserved for ids jetplan makes (${all})`;
  const report = REPORT_MESSAGE_ID_PREFIXES.find((p) => messageId.startsWith(p));
  if (report === undefined || (input !== undefined && isOwnReportId(messageId, report, input))) return undefined;
  return `message id ${JSON.stringify(messageId)} starts with "${report}", which is reserved for the report of dispatch ${messageId.slice(report.length)}`;
}

const isReportType = (type: string): boolean => type === 'TaskCompleted' || type === 'TaskFailed' || type === 'NeedsClarification';

/** A report's id under its own dispatch: `<prefix><dispatchId>`, or that and `.<more>` (its own retries). */
function isOwnReportId(messageId: string, prefix: string, input: { type: string; dispatchId?: string }): boolean {
  if (input.dispatchId === undefined || !isReportType(input.type)) return false;
  const own = `${prefix}${input.dispatchId}`;
  return messageId === own || messageId.startsWith(`${own}.`);
}

/**
 * InputMeta as the events' envelopes need it: checked where a caller hands it over, since a value
 * the envelope schema refuses (a numeric message id, a time that is not a number) would be
 * appended and then make the log unreadable.
 */
export const InputMetaSchema = z.object({
  // A line break cannot go into a NATS header (Nats-Msg-Id of the events).
  messageId: z.string().min(1).regex(/^[^\r\n]+$/, 'no line breaks'),
  now: z.number().finite(),
  correlationId: z.string().optional(),
  streamSequence: z.number().int().positive().optional(),
});
