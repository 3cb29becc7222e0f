import { countTokens } from 'gpt-tokenizer/encoding/cl100k_base';

/**
 * Counts the tokens of a text. Implementations must be pure and deterministic: compaction relies on
 * `count` returning the same number for the same text to guarantee that its output fits the budget.
 */
export interface TokenCounter {
  count(text: string): number;
}

// gpt-tokenizer throws on special-token strings such as "<|endoftext|>" by default. Context text
// (tool output, user input) may legitimately contain them; a chat API encodes user content as plain
// text, so we count them the same way instead of failing the whole compaction.
const PLAIN_TEXT = { disallowedSpecial: new Set<string>() };

/**
 * Token counter backed by the real cl100k_base BPE tables shipped inside `gpt-tokenizer` (nothing is
 * downloaded at run time). This module keeps no cache of its own; gpt-tokenizer's internal merge
 * cache is an LRU bounded at 100 000 entries, so memory cannot grow without bound.
 */
export const bpeTokenCounter: TokenCounter = Object.freeze({
  count(text: string): number {
    return text.length === 0 ? 0 : countTokens(text, PLAIN_TEXT);
  },
});

/** Sum of the token counts of `items`, each text counted separately (how budgets are checked). */
export function countItemTokens(items: readonly { text: string }[], counter: TokenCounter): number {
  let total = 0;
  for (const item of items) total += counter.count(item.text);
  return total;
}
