import { MAX_SLOT_PRIORITY, SLOT_PRIORITY } from './compactor.js';
import { chunkText, type SpanCounter } from './chunker.js';
import { isPinned } from './plan.js';
import type { Plan } from './plan.js';
import { isOldSummary } from './summary.js';
import type { TaskRelevance } from './taskRelevance.js';
import type { UnitCache } from './textUnits.js';
import { countsAsBpe, type TokenCounter } from './tokenCounter.js';

/** Resolved, validated options of the relevance compactor. */
export interface Config {
  counter: TokenCounter;
  recencyWeight: number;
  relevanceWeight: number;
  chunkTokens: number;
  /** Relevance to the open tasks, with what earlier compactions computed: only a cost saving. */
  relevance: TaskRelevance;
  /** Token counts of units of texts seen before: only a cost saving. */
  units: UnitCache;
  /** The cl100k counter with a memo of the compactor's own: for the pieces, chunks and lines of a compaction, when `counter` counts as it does. */
  pieces: TokenCounter;
}

/** One chunk of one item, competing for room with every other chunk. */
export interface Candidate {
  item: number;
  index: number;
  tokens: number;
  score: number;
}

/** Counts slices of `text` from its units when the counter is the cl100k one, else leaves them to it. */
function spansOf(text: string, config: Config): SpanCounter | undefined {
  if (!countsAsBpe(config.counter)) return undefined;
  const units = config.units.units(text);
  return (start, end) => config.units.span(units, start, end);
}

// Slot priority is a tie-break: small enough that it only outweighs a few positions of recency.
const SLOT_TIE_BREAK = 0.05;

/** Chunks and scores every non-pinned item except old summaries, which the new summary replaces. */
export function prepareCandidates(plan: Plan, sizes: readonly number[], openTasks: readonly string[], config: Config): Candidate[] {
  const relevance = config.relevance.forOpenTasks(openTasks);
  const last = Math.max(1, plan.items.length - 1);
  const candidates: Candidate[] = [];
  plan.items.forEach((item, i) => {
    if (isPinned(item) || isOldSummary(item)) return;
    // Empty texts cost nothing, so they are always kept whole.
    if (sizes[i] === 0) return void (plan.whole[i] = true);
    const chunks = chunkText(item.text, config.counter, config.chunkTokens, sizes[i], spansOf(item.text, config));
    plan.chunks[i] = chunks;
    const base = config.recencyWeight * (i / last) + (SLOT_TIE_BREAK * SLOT_PRIORITY[item.slot]) / MAX_SLOT_PRIORITY;
    chunks.forEach((chunk, index) => {
      const score = base + config.relevanceWeight * relevance(chunk.text);
      candidates.push({ item: i, index, tokens: chunk.tokens, score });
    });
  });
  // Total order: best score, then most recent item, then earliest chunk, so ties are deterministic.
  return candidates.sort((a, b) => b.score - a.score || b.item - a.item || a.index - b.index);
}
