import { TextCache } from './textCache.js';
import { countWithinPiece, isWhitespace, MAX_PIECE, MAX_RUN } from './tokenCounter.js';

/**
 * Why units: `bpeTokenCounter` counts a text as the sum of its pieces, and cl100k's pre-tokenizer
 * never joins what is on both sides of a space or tab that follows a non-whitespace character (a
 * word takes the space before it, punctuation stops at whitespace, whitespace runs start there). So
 * cut at every such position (a *unit start*), a text counts as the sum of its units, each counted
 * with the cuts inside runs without whitespace that `bpeTokenCounter` makes (they depend only on the
 * unit), plus a correction where one of its cuts for length falls on a space that follows
 * whitespace (an *unsafe space*), which depends on where its pieces start. A unit's count is
 * therefore a function of its text, and a text edited in one place keeps the counts of all its
 * other units: what lets the compactor count the text it assembles from kept chunks without
 * tokenizing the whole text after each chunk (`keptCost.ts`).
 */

/** One text cut into units, with their cumulative token counts. */
export interface TextUnits {
  readonly text: string;
  /** Where each unit starts, ascending; the first is 0 (an empty text has none). */
  readonly starts: Int32Array;
  /** `prefix[j]`: tokens of the units before unit `j`; `prefix[starts.length]` is their sum. */
  readonly prefix: Float64Array;
  /** Positions of every space (U+0020) if the text has an unsafe space, else empty. */
  readonly spaces: Int32Array;
  /** Whether a space follows whitespace somewhere (a cut for length there may change the count). */
  readonly unsafeSpaces: boolean;
  /** Whether a run without whitespace is longer than MAX_RUN, or one of whitespace than MAX_PIECE (cut for length inside it). */
  readonly longRuns: boolean;
}

/** Whether a unit starts at `i`: a space or tab after a character that is not whitespace. */
export function isUnitStart(text: string, i: number): boolean {
  const code = text.charCodeAt(i);
  return i > 0 && (code === 32 || code === 9) && !isWhitespace(text.charCodeAt(i - 1));
}

/** Whitespace for the counter's runs (`bpeTokenCounter` resets a run only at these four). */
const isRunBreak = (code: number): boolean => code === 32 || code === 9 || code === 10 || code === 13;

/** The units of recent texts, remembered by text (`TextCache`: bounded, changes no result). */
export class UnitCache {
  private readonly texts: TextCache<TextUnits>;

  constructor(maxChars = 8 * 1024 * 1024) {
    this.texts = new TextCache(maxChars);
  }

  /** Tokens of one unit (or of any text that a cut for length cannot reach, e.g. one under 2,048 characters). */
  count(unit: string): number {
    return countWithinPiece(unit);
  }

  /** The units of `text`. */
  units(text: string): TextUnits {
    return this.texts.get(text, (t) => this.index(t));
  }

  /**
   * The `bpeTokenCounter` count of `units.text[start, end)`, from the units it spans (the two at
   * its ends counted as they are cut), or undefined for a slice of 2,048 characters or more, whose
   * cuts for length this does not follow.
   */
  span(units: TextUnits, start: number, end: number): number | undefined {
    if (end - start >= MAX_PIECE) return undefined;
    const { text, starts, prefix } = units;
    const first = lastAtMost(starts, start) + 1;
    if (first >= starts.length || starts[first]! >= end) return this.count(text.slice(start, end));
    const last = lastAtMost(starts, end - 1);
    return this.count(text.slice(start, starts[first])) + (prefix[last]! - prefix[first]!) + this.count(text.slice(starts[last], end));
  }

  private index(text: string): TextUnits {
    const starts: number[] = text.length === 0 ? [] : [0];
    const spaces: number[] = [];
    let unsafeSpaces = false;
    let run = 0;
    let blank = 0;
    let longRuns = false;
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i);
      if (code === 32) {
        spaces.push(i);
        if (i > 0 && isWhitespace(text.charCodeAt(i - 1))) unsafeSpaces = true;
      }
      if (isUnitStart(text, i)) starts.push(i);
      // A long run of whitespace is cut for length too (see `pieces`), moving the pieces' starts.
      if (isRunBreak(code)) {
        run = 0;
        if (++blank > MAX_PIECE) longRuns = true;
      } else {
        blank = 0;
        if (++run > MAX_RUN) longRuns = true;
      }
    }
    const prefix = new Float64Array(starts.length + 1);
    for (let j = 0; j < starts.length; j++) {
      prefix[j + 1] = prefix[j]! + this.count(text.slice(starts[j], starts[j + 1] ?? text.length));
    }
    return { text, starts: Int32Array.from(starts), prefix, spaces: unsafeSpaces ? Int32Array.from(spaces) : new Int32Array(0), unsafeSpaces, longRuns };
  }
}

/** The index of the last element of sorted `values` that is <= `x`, or -1. */
export function lastAtMost(values: Int32Array, x: number): number {
  let lo = 0;
  let hi = values.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (values[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}
