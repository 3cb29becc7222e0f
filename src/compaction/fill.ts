import type { Candidate } from './candidates.js';
import { KeptCost } from './keptCost.js';
import type { Plan } from './plan.js';
import type { UnitCache } from './textUnits.js';
import { countsAsBpe, type TokenCounter } from './tokenCounter.js';

// BPE is not additive: joining chunks can merge tokens or drop an elision marker, so a chunk whose
// estimate exceeds the room by a few tokens may still fit. Beyond this slack we skip the exact recount.
const ESTIMATE_SLACK = 4;

/**
 * Greedily adds the best chunks while the exact recount of their item keeps the total within `limit`.
 * The recount is the count of the text `plan.assemble` makes of the item; with the cl100k counter
 * it is kept up to date chunk by chunk (`KeptCost`) rather than counted afresh, same number.
 */
export function fill(plan: Plan, candidates: readonly Candidate[], limit: number, counter: TokenCounter, sizes: readonly number[], units: UnitCache): number {
  const costs = new ItemCosts(plan, counter, sizes, units);
  const filled = new Set<number>();
  let used = 0;
  for (const c of candidates) {
    if (used + c.tokens > limit + ESTIMATE_SLACK) continue;
    const kept = plan.kept[c.item] as Set<number>;
    const tracked = costs.of(c.item);
    const exact = tracked?.costWith(c.index);
    kept.add(c.index);
    const cost = exact ?? counter.count(plan.assemble(c.item));
    const next = used - (plan.cost[c.item] ?? 0) + cost;
    if (next > limit) {
      kept.delete(c.index);
      continue;
    }
    if (exact !== undefined) tracked!.add(c.index);
    used = next;
    plan.cost[c.item] = cost;
    filled.add(c.item);
  }
  // The text of each item as its last accepted chunk left it (rejected ones were taken out again).
  for (const i of filled) plan.text[i] = plan.assemble(i);
  return used;
}

/** The incremental count of each item, made when its first chunk comes, for counters that allow it. */
class ItemCosts {
  private readonly costs = new Map<number, KeptCost>();
  private readonly enabled: boolean;

  constructor(
    private readonly plan: Plan,
    counter: TokenCounter,
    private readonly sizes: readonly number[],
    private readonly units: UnitCache,
  ) {
    this.enabled = countsAsBpe(counter);
  }

  of(item: number): KeptCost | undefined {
    if (!this.enabled) return undefined;
    let cost = this.costs.get(item);
    if (!cost) {
      const text = this.plan.items[item]!.text;
      cost = new KeptCost(this.units.units(text), this.plan.chunks[item]!, this.sizes[item]!, this.units);
      this.costs.set(item, cost);
    }
    return cost;
  }
}
