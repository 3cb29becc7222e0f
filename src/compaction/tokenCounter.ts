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
    if (text.length === 0) return 0;
    if (text.length <= MAX_RUN) return countTokens(text, PLAIN_TEXT);
    let total = 0;
    for (const piece of pieces(text)) total += countTokens(piece, PLAIN_TEXT);
    return total;
  },
});

/** Longest run without whitespace counted in one piece: BPE's merges are quadratic in a run. */
const MAX_RUN = 256;
/** Pieces of ordinary text are cut before a space once this long. */
const MAX_PIECE = 2_048;

/**
 * Splits a long text for counting: before a space once a piece is MAX_PIECE long (cl100k starts a
 * word with its leading space, so the tokens are those of the whole text), and inside any run of
 * MAX_RUN characters without whitespace (a 60 KB line of "=" took seconds to count whole; cut, its
 * count is a close upper bound). Never inside a surrogate pair. Deterministic, as counts must be.
 */
function* pieces(text: string): Generator<string> {
  let start = 0;
  let run = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    const space = code === 32 || code === 9 || code === 10 || code === 13;
    if (space) {
      if (i - start >= MAX_PIECE && code === 32) {
        yield text.slice(start, i);
        start = i;
      }
      run = 0;
    } else if (++run > MAX_RUN && !(code >= 0xdc00 && code <= 0xdfff)) {
      yield text.slice(start, i);
      start = i;
      run = 1;
    }
  }
  yield text.slice(start);
}

/** Sum of the token counts of `items`, each text counted separately (how budgets are checked). */
export function countItemTokens(items: readonly { text: string }[], counter: TokenCounter): number {
  let total = 0;
  for (const item of items) total += counter.count(item.text);
  return total;
}
