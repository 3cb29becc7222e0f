import type { Candidate } from './candidates.js';
import type { Plan } from './plan.js';
import type { TokenCounter } from './tokenCounter.js';

// BPE is not additive: joining chunks can merge tokens or drop an elision marker, so a chunk whose
// estimate exceeds the room by a few tokens may still fit. Beyond this slack we skip the exact recount.
const ESTIMATE_SLACK = 4;

/** Greedily adds the best chunks while the exact recount of their item keeps the total within `limit`. */
export function fill(plan: Plan, candidates: readonly Candidate[], limit: number, counter: TokenCounter): number {
  let used = 0;
  for (const c of candidates) {
    if (used + c.tokens > limit + ESTIMATE_SLACK) continue;
    const kept = plan.kept[c.item] as Set<number>;
    kept.add(c.index);
    const text = plan.assemble(c.item);
    const cost = counter.count(text);
    const next = used - (plan.cost[c.item] ?? 0) + cost;
    if (next > limit) {
      kept.delete(c.index);
      continue;
    }
    used = next;
    plan.cost[c.item] = cost;
    plan.text[c.item] = text;
  }
  return used;
}
