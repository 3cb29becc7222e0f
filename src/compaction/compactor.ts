import type { ContextItem } from '../protocol/domain.js';

/** What to compact: the current context, the budget it must fit, and what the agent still has to do. */
export interface CompactionRequest {
  items: ContextItem[];
  /** Maximum total tokens of the returned items, each item counted separately and summed. */
  budget: number;
  /**
   * A larger limit for pinned items alone (default `budget`): a planner that compacts below its
   * budget, to leave room, still keeps every pinned item that fits the budget itself. The result
   * is then at most max(budget, the pinned items kept).
   */
  pinnedBudget?: number;
  /** Descriptions of tasks not yet completed; context relevant to them is kept preferentially. */
  openTasks: string[];
}

/** The compacted context. */
export interface CompactionResult {
  items: ContextItem[];
  /** Ids of input items dropped or folded into the summary, i.e. no longer present in full. */
  folded: string[];
  tokensBefore: number;
  tokensAfter: number;
}

/** Shrinks a context to a token budget. Implementations must be pure: same request, same result. */
export interface Compactor {
  compact(request: CompactionRequest): CompactionResult;
}

/** The kinds of context item. */
export type ContextSlot = ContextItem['slot'];

/**
 * How much each slot is worth keeping, higher is more valuable. Used as a tie-break weight between
 * chunks whose relevance and recency are (nearly) equal:
 *
 * | slot    | priority | why                                                                 |
 * |---------|----------|---------------------------------------------------------------------|
 * | system  | 4        | instructions; always treated as pinned anyway                       |
 * | answer  | 3        | a human's clarification cannot be re-derived by re-running a tool  |
 * | summary | 2        | already condensed: dropping it loses the most per token             |
 * | input   | 1        | the user's request; usually restated by the open tasks              |
 * | result  | 0        | tool output: bulky, and can often be re-fetched                     |
 */
export const SLOT_PRIORITY: Readonly<Record<ContextSlot, number>> = Object.freeze({
  system: 4,
  answer: 3,
  summary: 2,
  input: 1,
  result: 0,
});

/** The largest value in {@link SLOT_PRIORITY}, to normalise priorities to [0, 1]. */
export const MAX_SLOT_PRIORITY: number = Math.max(...Object.values(SLOT_PRIORITY));
