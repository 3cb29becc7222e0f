import { countTokens } from 'gpt-tokenizer/encoding/cl100k_base';

/**
 * Counts the tokens of a text. Implementations must be pure and deterministic: compaction relies on
 * `count` returning the same number for the same text to guarantee that its output fits the budget.
 */
export interface TokenCounter {
  count(text: string): number;
  /**
   * A counter whose count this one equals on every text (e.g. the counter a cache sits in front
   * of). The compactor counts texts it edits incrementally when the counts are
   * {@link bpeTokenCounter}'s, whose structure it knows; any other counter is asked for each text.
   */
  readonly countsAs?: TokenCounter;
}

// gpt-tokenizer throws on special-token strings such as "<|endoftext|>" by default. Context text
// (tool output, user input) may legitimately contain them; a chat API encodes user content as plain
// text, so we count them the same way instead of failing the whole compaction.
const PLAIN_TEXT = { disallowedSpecial: new Set<string>() };

/**
 * Token counter backed by the real cl100k_base BPE tables shipped inside `gpt-tokenizer` (nothing is
 * downloaded at run time). A text is counted in pieces (see `pieces`), and a piece as the sum of its
 * units: cut before each space or tab that follows a non-whitespace character, where cl100k's
 * pre-tokenizer never joins the two sides, so the sum is the piece's count (`textUnits.ts` says
 * why; a test checks it against the tokenizer). Units are words with their punctuation and the
 * space before them, which repeat: their counts are remembered (bounded, {@link unitTokens}), so
 * a text made of known words costs a lookup per word instead of a BPE pass, ~10× less.
 * gpt-tokenizer's own merge cache is an LRU bounded at 100 000 entries.
 */
export const bpeTokenCounter: TokenCounter = Object.freeze({
  count(text: string): number {
    let total = 0;
    let start = 0; // of the current piece
    let unit = 0; // start of the current unit
    let run = 0;
    let blank = 0; // length of the current run of whitespace
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i);
      let cut = false;
      // The cuts of `pieces`, inlined: one pass finds pieces and units alike.
      if (code === 32 || code === 9 || code === 10 || code === 13) {
        run = 0;
        if ((i - start >= MAX_PIECE && code === 32) || ++blank > MAX_PIECE) {
          cut = true;
          blank = 1;
        }
      } else {
        blank = 0;
        if (++run > MAX_RUN && !(code >= 0xdc00 && code <= 0xdfff)) {
          cut = true;
          run = 1;
        }
      }
      if (cut) start = i;
      if (cut || (i > unit && (code === 32 || code === 9) && !isWhitespace(text.charCodeAt(i - 1)))) {
        total += unitTokens(text.slice(unit, i));
        unit = i;
      }
    }
    return text.length === 0 ? 0 : total + unitTokens(text.slice(unit));
  },
});

/** Whether a UTF-16 code unit is whitespace as the tokenizer's `\s` (and `String.prototype.trim`) see it. */
export function isWhitespace(code: number): boolean {
  if (code <= 32) return code === 32 || (code >= 9 && code <= 13);
  if (code < 0xa0) return false;
  return (
    code === 0xa0 || code === 0x1680 || (code >= 0x2000 && code <= 0x200a) || code === 0x2028 || code === 0x2029 ||
    code === 0x202f || code === 0x205f || code === 0x3000 || code === 0xfeff
  );
}

/** The unit memo is emptied when it holds this many characters (~8–16 MB with the map). */
const MAX_UNIT_CHARS = 4 * 1024 * 1024;
/** Longer units (a line of text without spaces, say) are rare and not remembered. */
const MAX_UNIT_LENGTH = 256;
const units = new Map<string, number>();
let unitChars = 0;

/**
 * The tokenizer's count of `text` as one piece (no cut of `pieces` inside it), remembered when
 * short. Pure: what the memo holds changes no count.
 */
export function unitTokens(text: string): number {
  const known = units.get(text);
  if (known !== undefined) return known;
  const tokens = countTokens(text, PLAIN_TEXT);
  if (text.length > MAX_UNIT_LENGTH) return tokens;
  if (unitChars + text.length > MAX_UNIT_CHARS) {
    units.clear();
    unitChars = 0;
  }
  // A slice of 13 characters or more shares its parent's memory: a key of its own keeps a long
  // text from staying alive for one of its words.
  units.set(text.length < 13 ? text : ` ${text}`.slice(1), tokens);
  unitChars += text.length;
  return tokens;
}

/** Whether `counter` counts exactly as {@link bpeTokenCounter}. */
export const countsAsBpe = (counter: TokenCounter): boolean => counter === bpeTokenCounter || counter.countsAs === bpeTokenCounter;

/**
 * The count of `text` as {@link bpeTokenCounter} counts it when no piece is cut for length, only
 * runs without whitespace: the count of a unit of text (see `textUnits.ts`), whose cuts for length
 * depend on where the whole text's pieces start. Equal to `bpeTokenCounter.count` below 2,048
 * characters.
 */
export function countWithinPiece(text: string): number {
  if (text.length <= MAX_RUN) return text.length === 0 ? 0 : unitTokens(text);
  let total = 0;
  for (const piece of pieces(text, Infinity)) total += unitTokens(piece);
  return total;
}

/** Longest run without whitespace counted in one piece: BPE's merges are quadratic in a run. */
export const MAX_RUN = 256;
/** Pieces of ordinary text are cut before a space once this long. */
export const MAX_PIECE = 2_048;

/**
 * Splits a long text for counting: before a space once a piece is MAX_PIECE long (cl100k starts a
 * word with its leading space, so the tokens are those of the whole text), inside any run of
 * MAX_RUN characters without whitespace (a 60 KB line of "=" took seconds to count whole; cut, its
 * count is a close upper bound), and inside any run of whitespace longer than MAX_PIECE (32,000
 * tabs or newlines took 1.6–3.6 s whole: one pre-token to BPE; cut, a close upper bound). Never inside a surrogate pair. Deterministic, as counts must be.
 * (`textUnits.ts` relies on these rules: change them and stored compactions would not be redone
 * alike.)
 */
function* pieces(text: string, maxPiece: number): Generator<string> {
  let start = 0;
  let run = 0;
  let blank = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    const space = code === 32 || code === 9 || code === 10 || code === 13;
    if (space) {
      run = 0;
      if ((i - start >= maxPiece && code === 32) || ++blank > MAX_PIECE) {
        yield text.slice(start, i);
        start = i;
        blank = 1;
      }
    } else {
      blank = 0;
      if (++run > MAX_RUN && !(code >= 0xdc00 && code <= 0xdfff)) {
        yield text.slice(start, i);
        start = i;
        run = 1;
      }
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
