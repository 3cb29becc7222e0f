import { MAX_SLOT_PRIORITY, SLOT_PRIORITY } from './compactor.js';
import { chunkText } from './chunker.js';
import { isPinned } from './plan.js';
import type { Plan } from './plan.js';
import { relevance, termsOf } from './relevance.js';
import { isOldSummary } from './summary.js';
import type { TokenCounter } from './tokenCounter.js';

/** Resolved, validated options of the relevance compactor. */
export interface Config {
  counter: TokenCounter;
  recencyWeight: number;
  relevanceWeight: number;
  chunkTokens: number;
}

/** One chunk of one item, competing for room with every other chunk. */
export interface Candidate {
  item: number;
  index: number;
  tokens: number;
  score: number;
}

// Slot priority is a tie-break: small enough that it only outweighs a few positions of recency.
const SLOT_TIE_BREAK = 0.05;

/** Chunks and scores every non-pinned item except old summaries, which the new summary replaces. */
export function prepareCandidates(plan: Plan, sizes: readonly number[], openTasks: readonly string[], config: Config): Candidate[] {
  const tasks = openTasks.map(termsOf).filter((terms) => terms.size > 0);
  const last = Math.max(1, plan.items.length - 1);
  const candidates: Candidate[] = [];
  plan.items.forEach((item, i) => {
    if (isPinned(item) || isOldSummary(item)) return;
    // Empty texts cost nothing, so they are always kept whole.
    if (sizes[i] === 0) return void (plan.whole[i] = true);
    const chunks = chunkText(item.text, config.counter, config.chunkTokens, sizes[i]);
    plan.chunks[i] = chunks;
    const base = config.recencyWeight * (i / last) + (SLOT_TIE_BREAK * SLOT_PRIORITY[item.slot]) / MAX_SLOT_PRIORITY;
    chunks.forEach((chunk, index) => {
      const score = base + config.relevanceWeight * relevance(termsOf(chunk.text), tasks);
      candidates.push({ item: i, index, tokens: chunk.tokens, score });
    });
  });
  // Total order: best score, then most recent item, then earliest chunk, so ties are deterministic.
  return candidates.sort((a, b) => b.score - a.score || b.item - a.item || a.index - b.index);
}
