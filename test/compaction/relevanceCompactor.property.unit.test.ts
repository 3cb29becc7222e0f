import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bpeTokenCounter, countItemTokens, createMemoTokenCounter, createRelevanceCompactor } from '../../src/compaction/index.js';
import type { ContextItem } from '../../src/protocol/domain.js';
import { trickyText } from './textArbitraries.js';

const VOCABULARY = ['hotel', 'Paris', 'Louvre', 'train', 'ticket', 'budget', 'weather', 'stock', 'the', 'a', '東京', '酒店', 'Привет', 'café', '🙂', '42'];
const SEPARATORS = [' ', ' ', ' ', '. ', '! ', '\n', '\n\n', '。'];

// Prose-like text (so chunking and relevance have something to work on) mixed with arbitrary Unicode.
const prose = fc
  .array(fc.tuple(fc.constantFrom(...VOCABULARY), fc.constantFrom(...SEPARATORS)), { maxLength: 300, size: 'large' })
  .map((parts) => parts.map(([word, sep]) => word + sep).join(''));
const text = fc.oneof({ arbitrary: prose, weight: 3 }, fc.string({ unit: 'grapheme', maxLength: 200 }), fc.string({ unit: 'binary', maxLength: 60 }));

const items = fc
  .array(
    fc.record({
      slot: fc.constantFrom('system', 'input', 'result', 'answer', 'summary'),
      text,
      pinned: fc.integer({ min: 0, max: 3 }).map((n) => n === 0),
      summaryId: fc.boolean(),
    }),
    { maxLength: 12 },
  )
  .map((drafts) =>
    drafts.map(({ slot, text, pinned, summaryId }, k): ContextItem => ({
      // Unique ids, except that summary items sometimes carry the reserved id, as a real one would.
      id: slot === 'summary' && summaryId && k === drafts.findIndex((d) => d.slot === 'summary') ? 'summary' : `i${k}`,
      slot,
      text,
      pinned,
    })),
  );

const openTasks = fc.array(fc.oneof(prose, fc.string({ maxLength: 30 })), { maxLength: 3 });
// Budgets are either tiny absolute values or a share (per mille, up to 110%) of the input total, so
// that under-budget, tight and roomy (summary-producing) cases all occur. Integers, not fc.double,
// which is biased towards its bounds.
const budget = fc.oneof(
  fc.record({ absolute: fc.integer({ min: 0, max: 60 }) }),
  fc.record({ perMille: fc.integer({ min: 0, max: 1100 }) }),
);
const options = fc.record({ chunkTokens: fc.integer({ min: 1, max: 80 }), recencyWeight: fc.double({ min: 0, max: 2, noNaN: true }) });

const isPinned = (item: ContextItem): boolean => item.pinned || item.slot === 'system';
const tokens = (list: readonly ContextItem[]): number => countItemTokens(list, bpeTokenCounter);

describe('relevance compactor properties', () => {
  it('respects the budget, keeps pinned items, reports exact totals and is stable', () => {
    fc.assert(
      fc.property(items, openTasks, budget, options, (input, tasks, spec, opts) => {
        const limit = 'absolute' in spec ? spec.absolute : Math.floor((spec.perMille * tokens(input)) / 1000);
        const compactor = createRelevanceCompactor(opts);
        const result = compactor.compact({ items: input, budget: limit, openTasks: tasks });
        const after = tokens(result.items);
        // (1) never over budget
        expect(after).toBeLessThanOrEqual(limit);
        // (2) pinned items survive unchanged whenever they fit together
        const pinned = input.filter(isPinned);
        if (tokens(pinned) <= limit) for (const p of pinned) expect(result.items).toContainEqual(p);
        // (3) reported totals are exact
        expect(result.tokensAfter).toBe(after);
        expect(result.tokensBefore).toBe(tokens(input));
        // folded lists exactly the input ids no longer present in full
        for (const it of input) {
          const present = result.items.some((out) => out.id === it.id && out.text === it.text);
          expect(result.folded.includes(it.id)).toBe(!present);
        }
        // (4) compacting again stays within budget (and, being under budget, changes nothing)
        const again = compactor.compact({ items: result.items, budget: limit, openTasks: tasks });
        expect(again.tokensAfter).toBeLessThanOrEqual(limit);
        expect(again.items).toEqual(result.items);
      }),
      { numRuns: 300 },
    );
  });

  it('gives the same result counting kept chunks incrementally as counting every text, its caches carried over', () => {
    // A counter that is not known to count as bpeTokenCounter: the compactor asks it for every text.
    const direct = { count: (text: string) => bpeTokenCounter.count(text) };
    const shared = createRelevanceCompactor({ counter: createMemoTokenCounter(bpeTokenCounter) });
    const large = fc.array(fc.record({ slot: fc.constantFrom('input', 'result'), text: trickyText(600) }), { maxLength: 4 });
    fc.assert(
      fc.property(items, large, openTasks, budget, (input, extra, tasks, spec) => {
        const all = [...input, ...extra.map(({ slot, text }, k): ContextItem => ({ id: `x${k}`, slot, text, pinned: false }))];
        const limit = 'absolute' in spec ? spec.absolute : Math.floor((spec.perMille * tokens(all)) / 1000);
        const request = { items: all, budget: limit, openTasks: tasks };
        expect(shared.compact(request)).toEqual(createRelevanceCompactor({ counter: direct }).compact(request));
      }),
      { numRuns: 150 },
    );
    // ~15 s alone; several times that beside the other suites on 2 cores.
  }, 120_000);
});
