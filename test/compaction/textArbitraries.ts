import fc from 'fast-check';

/**
 * Texts that exercise how `bpeTokenCounter` cuts and how the compactor counts edited texts: words
 * and punctuation between every kind of whitespace (double spaces, indented lines and tabs, which
 * make cuts for length change counts; no-break and ideographic spaces, which the tokenizer treats as
 * whitespace and the counter's runs do not), runs without whitespace longer than 256 characters,
 * CJK, emoji, special-token strings, and sometimes more than 2,048 characters (cuts for length).
 */
const PARTS = [
  'hotel', 'Paris', 'Louvre', 'train', 'ticket', 'the', 'a', 'don\'t', "it's", '42', '1234567', 'café', '東京', '酒店',
  '🙂', '<|endoftext|>', '.', ',', '!', '?', '…', '-', '(', ')', '"', '=',
];
/** Separators; those that put a space after whitespace (where a cut for length changes a count) last. */
const SAFE_SPACES = [' ', ' ', ' ', ' ', '\t', '\n', '\n\n', '\r\n', '\u00a0', '\u3000', '. ', '! ', '。'];
const UNSAFE_SPACES = ['  ', '   ', '\n  ', '\n\t ', ' \n ', ' \u00a0 '];

/** What a text may hold: spaces after whitespace, runs without whitespace of 256 and more. */
export interface TextShape {
  unsafeSpaces?: boolean;
  longRuns?: boolean;
}

const piece = ({ unsafeSpaces = true, longRuns = true }: TextShape) =>
  fc.oneof(
    {
      arbitrary: fc
        .tuple(fc.constantFrom(...PARTS), fc.constantFrom(...SAFE_SPACES, ...(unsafeSpaces ? UNSAFE_SPACES : [])))
        .map(([w, s]) => w + s),
      weight: 20,
    },
    { arbitrary: fc.integer({ min: 200, max: 700 }).map((n) => 'x'.repeat(longRuns ? n : 100)), weight: 1 },
    { arbitrary: fc.string({ unit: 'grapheme', maxLength: 8 }).filter((s) => unsafeSpaces || !/\s /u.test(s)), weight: 2 },
  );

/** A text of up to `maxParts` pieces (about 5 characters each, some far longer). */
export const trickyText = (maxParts: number, shape: TextShape = {}) =>
  fc.array(piece(shape), { maxLength: maxParts, size: 'max' }).map((parts) => {
    const text = parts.join('');
    // Joined, two pieces can still make a space after whitespace, or a run of 256.
    if (shape.unsafeSpaces === false) return text.replace(/(\s) /gu, '$1x');
    return text;
  });
