import type { TokenCounter } from './tokenCounter.js';

/** How much a memo may hold: entries, and the total length of the texts it keeps as keys. */
export interface MemoLimits {
  /** Most texts remembered (default 10,000). */
  maxEntries?: number;
  /**
   * Most characters of text remembered, all keys together (default 8 Mi, ~8–16 MB). Why: the keys
   * are whole texts (inputs, results, summaries as large as a context), and a count-only bound let
   * a service with large inputs hold gigabytes. A text longer than this is counted, not kept.
   */
  maxChars?: number;
}

const DEFAULT_MAX_ENTRIES = 10_000;
const DEFAULT_MAX_CHARS = 8 * 1024 * 1024;

/**
 * A token counter that remembers the counts of recent texts. The planner checks the whole working
 * context against the budget after every completed task; most items were counted before, and BPE
 * is the expensive part. Bounded by entries and by characters: the least recently used go first.
 */
export function createMemoTokenCounter(counter: TokenCounter, limits: MemoLimits | number = {}): TokenCounter {
  const { maxEntries = DEFAULT_MAX_ENTRIES, maxChars = DEFAULT_MAX_CHARS } = typeof limits === 'number' ? { maxEntries: limits } : limits;
  const memo = new Map<string, number>();
  let chars = 0;
  // One iterator walks the keys from the oldest: a fresh `keys()` per eviction first skips every
  // entry deleted since the table was last compacted (each hit deletes one), which cost O(size)
  // per eviction once the memo was full.
  let oldest = memo.keys();
  const evict = (): void => {
    let next = oldest.next();
    if (next.done) next = (oldest = memo.keys()).next();
    memo.delete(next.value!);
    chars -= next.value!.length;
  };
  return {
    // A memo changes no count: the compactor may rely on the counted structure as it would on `counter`.
    countsAs: counter.countsAs ?? counter,
    count(text: string): number {
      const known = memo.get(text);
      if (known !== undefined) {
        // Moved to the end: a Map iterates in insertion order, so the first key is the least recent.
        memo.delete(text);
        memo.set(text, known);
        return known;
      }
      const tokens = counter.count(text);
      if (text.length > maxChars) return tokens;
      while (memo.size > 0 && (memo.size >= maxEntries || chars + text.length > maxChars)) evict();
      memo.set(text, tokens);
      chars += text.length;
      return tokens;
    },
  };
}
