import { z } from 'zod';
import { Attachment, NodeKind, SessionId } from './domain.js';

/** Work for an executor. `dispatchId` is the idempotency key: one per task attempt. */
export const ExecuteTask = z.object({
  type: z.literal('ExecuteTask'),
  // A session id, not any string: the report goes to `<prefix>.in.<sessionId>`, and the executor
  // follows `<prefix>.ev.<sessionId>`; one that is no subject token would fail there for ever.
  sessionId: SessionId,
  taskId: z.string(),
  dispatchId: z.string(),
  attempt: z.number().int().positive(),
  kind: NodeKind,
  description: z.string(),
  attachments: z.array(Attachment),
  context: z.string(),
});
export type ExecuteTask = z.infer<typeof ExecuteTask>;

/** A question for the human; answered by a `ProvideClarification` input. */
export const RequestClarification = z.object({
  type: z.literal('RequestClarification'),
  sessionId: SessionId,
  taskId: z.string(),
  question: z.string(),
});
export type RequestClarification = z.infer<typeof RequestClarification>;

/** Commands the planner emits. Commands are imperative. */
export const PlannerCommand = z.discriminatedUnion('type', [ExecuteTask, RequestClarification]);
export type PlannerCommand = z.infer<typeof PlannerCommand>;

/**
 * A command as the outbox stores it: appended with the events of the transition that emitted it,
 * delivered after the append is acknowledged. `id` is unique and stable (the dispatch id for
 * ExecuteTask), so a redelivery can be recognised downstream.
 */
export interface OutboxCommand {
  id: string;
  sessionId: string;
  causationId: string;
  correlationId: string;
  command: PlannerCommand;
}
