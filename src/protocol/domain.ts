import { z } from 'zod';

/** Session ids: 1 to 64 characters of [A-Za-z0-9_-] (safe as a NATS subject token and a file name). */
export const SessionId = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,64}$/, 'session id must be 1-64 characters of [A-Za-z0-9_-]');
export type SessionId = z.infer<typeof SessionId>;

/** What kind of work a task is, and so who performs it. */
export const NodeKind = z.enum(['ToolCall', 'Processing', 'Clarification']);
export type NodeKind = z.infer<typeof NodeKind>;

/** A task's lifecycle state; the values are the task machine's state names. */
export const TaskStatus = z.enum(['Planned', 'Running', 'Completed', 'NeedsClarification', 'Failed', 'Cancelled']);
export type TaskStatus = z.infer<typeof TaskStatus>;

/** Something a task refers to; today only URLs found in its text. */
export const Attachment = z.object({ kind: z.literal('url'), url: z.string() });
export type Attachment = z.infer<typeof Attachment>;

/** A task as planning produces it, before it has a lifecycle. */
export const PlannedTask = z.object({
  id: z.string().min(1),
  description: z.string().min(1),
  kind: NodeKind,
  attachments: z.array(Attachment),
});
export type PlannedTask = z.infer<typeof PlannedTask>;

/** A task with its lifecycle data, as the planner state shows it. */
export const Task = PlannedTask.extend({
  status: TaskStatus,
  attempts: z.number().int().nonnegative(),
  result: z.string().optional(),
  dispatchId: z.string().optional(),
  question: z.string().optional(),
  answer: z.string().optional(),
  error: z.string().optional(),
  retryAt: z.number().optional(),
});
export type Task = z.infer<typeof Task>;

/**
 * The longest backoff delay, ms: 2^31−1 (about 24.8 days), the longest wait a Node timer honours.
 * Longer waits are re-armed in steps anyway (actors/timers.ts); the bound keeps due times sane.
 */
export const MAX_DELAY_MS = 2 ** 31 - 1;
/** The largest backoff factor: with at most MAX_ATTEMPTS attempts, factor^attempt stays finite. */
export const MAX_BACKOFF_FACTOR = 10;
/** The most attempts a task may get. */
export const MAX_ATTEMPTS = 100;
/**
 * The largest token budget. A task's rendered context travels in one NATS message; the service
 * compacts it further when its bytes would not fit (decideDeps.maxCommandBytes), so the budget
 * bounds the context an LLM gets, not the message.
 */
export const MAX_TOKEN_BUDGET = 100_000;

const delayMs = (field: string) =>
  z.number().int().nonnegative().max(MAX_DELAY_MS, `${field} must be at most ${MAX_DELAY_MS} ms (about 24.8 days)`);

/** Exponential backoff between attempts: delay = min(maxMs, baseMs * factor^(attempt-1)). */
export const Backoff = z.object({
  baseMs: delayMs('backoff.baseMs').default(200),
  factor: z.number().min(1).max(MAX_BACKOFF_FACTOR, `backoff.factor must be at most ${MAX_BACKOFF_FACTOR}`).default(2),
  maxMs: delayMs('backoff.maxMs').default(30_000),
});
export type Backoff = z.infer<typeof Backoff>;

/** How a session plans, retries and budgets its context. */
export const PlannerConfig = z.object({
  systemPrompt: z.string().default('You are jetplan, a careful planner.'),
  profile: z.string().default('default'),
  tokenBudget: z
    .number()
    .int()
    .positive()
    .max(MAX_TOKEN_BUDGET, `tokenBudget must be at most ${MAX_TOKEN_BUDGET} tokens: a larger context may not fit in one NATS message`)
    .default(2048),
  maxAttempts: z.number().int().positive().max(MAX_ATTEMPTS, `maxAttempts must be at most ${MAX_ATTEMPTS}`).default(3),
  backoff: Backoff.default({ baseMs: 200, factor: 2, maxMs: 30_000 }),
});
export type PlannerConfig = z.infer<typeof PlannerConfig>;
export type PlannerConfigInput = z.input<typeof PlannerConfig>;

/**
 * The config as a stored SessionStarted holds it: the same fields without the upper bounds, which
 * apply to new input. An event written before a bound existed (or under a looser one) is still a
 * valid event, not a corrupt log.
 */
export const StoredPlannerConfig = z.object({
  systemPrompt: z.string(),
  profile: z.string(),
  tokenBudget: z.number().int().positive(),
  maxAttempts: z.number().int().positive(),
  backoff: z.object({ baseMs: z.number().int().nonnegative(), factor: z.number().min(1), maxMs: z.number().int().nonnegative() }),
});

/** One item of working context; `pinned` items (constraints, decisions) survive compaction. */
export const ContextItem = z.object({
  id: z.string(),
  slot: z.enum(['system', 'input', 'result', 'answer', 'summary']),
  text: z.string(),
  pinned: z.boolean().default(false),
});
export type ContextItem = z.infer<typeof ContextItem>;

/** The read model of a session: what `replay` and `status` print. */
export interface PlannerState {
  sessionId: string;
  status: 'idle' | 'active' | 'completed' | 'failed' | 'cancelled';
  phase: 'ready' | 'running' | 'awaitingClarification' | 'backoff' | 'done';
  tasks: Task[];
  cursor: number;
  waiting: { clarification: string | null; retry: { taskId: string; dueAt: number } | null };
  /** `tokens`: the items' size as the planner counts it, or -1 when not counted (see toPlannerState). */
  context: { items: ContextItem[]; summary: string; tokens: number };
  /** null while the session has not started (its log holds only rejected inputs). */
  config: PlannerConfig | null;
  /** Why the session failed or was cancelled; null otherwise. */
  endReason: string | null;
  version: number;
}
