import type { ContextItem } from '../protocol/domain.js';
import { prepareCandidates } from './candidates.js';
import type { Config } from './candidates.js';
import type { CompactionRequest, CompactionResult, Compactor } from './compactor.js';
import { fill } from './fill.js';
import { isPinned, Plan } from './plan.js';
import { buildSummary, summaryReserve } from './summary.js';
import type { Summary } from './summary.js';
import { TaskRelevance } from './taskRelevance.js';
import { TermCache } from './termCache.js';
import { TextCache } from './textCache.js';
import { UnitCache } from './textUnits.js';
import { bpeTokenCounter, countsAsBpe } from './tokenCounter.js';
import type { TokenCounter } from './tokenCounter.js';

/** Tuning of {@link createRelevanceCompactor}; every field is optional. */
export interface RelevanceCompactorOptions {
  /** Counts tokens; defaults to the cl100k_base BPE counter. */
  counter?: TokenCounter;
  /** Weight of recency (0 for the oldest item, 1 for the newest); default 0.5. */
  recencyWeight?: number;
  /** Weight of relevance to the open tasks (itself in [0, 1]); default 1, so relevance beats recency. */
  relevanceWeight?: number;
  /** Target maximum size of a chunk in tokens; default 64. */
  chunkTokens?: number;
}

/**
 * Creates the default compactor: keeps pinned and system items, then the chunks of other items that
 * score best on relevance to the open tasks and recency, and folds the rest into one summary item.
 * Pure and deterministic given a deterministic counter; the returned items never exceed the budget.
 * It keeps bounded caches from one call to the next (terms of texts, token counts of units and
 * pieces, the open tasks' index; ~200 MB at most, far less for small sessions): they change no
 * result, only what a compaction costs, which then follows what changed rather than the whole
 * context and every open task.
 */
export function createRelevanceCompactor(options: RelevanceCompactorOptions = {}): Compactor {
  const terms = new TermCache();
  const config: Config = {
    counter: options.counter ?? bpeTokenCounter,
    recencyWeight: nonNegative('recencyWeight', options.recencyWeight ?? 0.5),
    relevanceWeight: nonNegative('relevanceWeight', options.relevanceWeight ?? 1),
    chunkTokens: nonNegative('chunkTokens', options.chunkTokens ?? 64),
    relevance: new TaskRelevance(terms),
    units: new UnitCache(),
    pieces: rememberedBpe(),
  };
  if (!Number.isInteger(config.chunkTokens) || config.chunkTokens < 1) {
    throw new RangeError(`chunkTokens must be a positive integer, got ${config.chunkTokens}`);
  }
  return {
    compact: (request) => {
      terms.startCompaction();
      return compact(request, config);
    },
  };
}

/** The cl100k counter with a memo of its own (`TextCache`: no LRU bookkeeping per hit). */
function rememberedBpe(): TokenCounter {
  const counts = new TextCache<number>(8 * 1024 * 1024);
  const count = (text: string) => bpeTokenCounter.count(text);
  return { countsAs: bpeTokenCounter, count: (text) => counts.get(text, count) };
}

function nonNegative(name: string, value: number): number {
  if (!Number.isFinite(value) || value < 0) throw new RangeError(`${name} must be a finite number >= 0, got ${value}`);
  return value;
}

function compact(request: CompactionRequest, config: Config): CompactionResult {
  const { items, budget } = request;
  if (Number.isNaN(budget) || budget < 0) throw new RangeError(`budget must be >= 0, got ${budget}`);
  const sizes = items.map((item) => config.counter.count(item.text));
  // Whole items are counted through the caller's counter (its memo keeps them from one compaction
  // to the next); the thousands of pieces, chunks and lines in between through the compactor's own
  // when that counts the same: in the caller's memo they pushed the items out.
  const counter = countsAsBpe(config.counter) ? config.pieces : config.counter;
  const tokensBefore = sum(sizes);
  if (tokensBefore <= budget) return { items: [...items], folded: [], tokensBefore, tokensAfter: tokensBefore };

  const plan = new Plan(items);
  const pinnedUsed = admitPinned(plan, sizes, Math.max(budget, request.pinnedBudget ?? budget));
  const room = Math.max(0, budget - pinnedUsed);
  const candidates = prepareCandidates(plan, sizes, request.openTasks, { ...config, counter });
  const filled = fill(plan, candidates, room - summaryReserve(room), counter, sizes, config.units);
  const summary = buildSummary(plan, room - filled, counter);
  return assemble(plan, summary, tokensBefore, pinnedUsed + filled);
}

const sum = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0);

/**
 * Keeps pinned items whole while they fit: system items first, then the others newest first (the
 * latest answer is the one the running task asked for; dropping it would have the task ask again).
 */
function admitPinned(plan: Plan, sizes: readonly number[], budget: number): number {
  const pinned = plan.items.flatMap((item, i) => (isPinned(item) ? [i] : []));
  const order = [
    ...pinned.filter((i) => plan.items[i]?.slot === 'system'),
    ...pinned.filter((i) => plan.items[i]?.slot !== 'system').reverse(),
  ];
  let used = 0;
  for (const i of order) {
    const size = sizes[i] ?? 0;
    if (used + size > budget) continue;
    plan.whole[i] = true;
    used += size;
  }
  return used;
}

/** Output in original order, the summary right after the leading system items. */
function assemble(plan: Plan, summary: Summary | null, tokensBefore: number, used: number): CompactionResult {
  const items: ContextItem[] = [];
  const folded = new Set<string>();
  plan.items.forEach((item, i) => {
    const text = plan.whole[i] ? item.text : plan.text[i];
    if (text !== item.text) folded.add(item.id);
    if (text !== undefined) items.push(text === item.text ? item : { ...item, text });
  });
  if (!summary) return { items, folded: [...folded], tokensBefore, tokensAfter: used };
  const at = items.findIndex((item) => item.slot !== 'system');
  items.splice(at === -1 ? items.length : at, 0, summary.item);
  return { items, folded: [...folded], tokensBefore, tokensAfter: used + summary.tokens };
}
