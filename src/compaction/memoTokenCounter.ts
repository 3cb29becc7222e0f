import type { TokenCounter } from './tokenCounter.js';

/**
 * A token counter that remembers the counts of recent texts. The planner checks the whole working
 * context against the budget after every completed task; most items were counted before, and BPE
 * is the expensive part. Bounded: the oldest entries are forgotten first.
 */
export function createMemoTokenCounter(counter: TokenCounter, maxEntries = 10_000): TokenCounter {
  const memo = new Map<string, number>();
  return {
    count(text: string): number {
      const known = memo.get(text);
      if (known !== undefined) return known;
      const tokens = counter.count(text);
      if (memo.size >= maxEntries) memo.delete(memo.keys().next().value!);
      memo.set(text, tokens);
      return tokens;
    },
  };
}
