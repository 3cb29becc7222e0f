import type { TokenCounter } from './tokenCounter.js';

/** A contiguous slice of an item's text; an item's chunks concatenate back to its exact text. */
export interface Chunk {
  text: string;
  tokens: number;
}

// Split levels, coarse to fine: paragraphs, sentences (Latin and CJK punctuation), words. Regexes
// rather than Intl.Segmenter, whose output depends on the ICU version and would break determinism
// across Node builds. Each separator stays attached to the piece before it, so pieces partition text.
const SPLITTERS: readonly RegExp[] = [
  /\n[ \t]*\n\s*/gu,
  /[.!?…]+["'”’)\]]*\s+|[。！？]+["'”’」』)\]]*\s*/gu,
  /\s+/gu,
];

/**
 * Counts `text[start, end)` of the text being chunked as the counter would count that slice, or
 * answers undefined to have the slice counted by the counter (the compactor answers from the
 * text's units, `textUnits.ts`, without tokenizing the pieces again).
 */
export type SpanCounter = (start: number, end: number) => number | undefined;

/** A piece of the text being chunked, and where it starts there. */
interface Piece extends Chunk {
  at: number;
}

/**
 * Splits `text` into chunks of at most about `maxTokens` tokens, at paragraph, then sentence, then
 * word boundaries, halving by code points as a last resort. The chunks concatenate back to `text`.
 * `textTokens`, if the caller already counted `text`, saves counting it again; `spans`, if given,
 * counts slices of `text` first.
 */
export function chunkText(text: string, counter: TokenCounter, maxTokens: number, textTokens?: number, spans?: SpanCounter): Chunk[] {
  if (text === '') return [];
  const count = (at: number, part: string): number => spans?.(at, at + part.length) ?? counter.count(part);
  const pieces = splitToFit(text, 0, textTokens ?? counter.count(text), 0, count, maxTokens);
  const chunks: Chunk[] = [];
  let run: Piece[] = [];
  let tokens = 0;
  for (const piece of pieces) {
    if (run.length > 0 && tokens + piece.tokens > maxTokens) {
      chunks.push(merge(run, count));
      [run, tokens] = [[], 0];
    }
    run.push(piece);
    tokens += piece.tokens;
  }
  chunks.push(merge(run, count));
  return chunks;
}

type Count = (at: number, part: string) => number;

/** Joins consecutive pieces into one chunk. */
function merge(pieces: readonly Piece[], count: Count): Chunk {
  const [only] = pieces;
  if (pieces.length === 1 && only) return { text: only.text, tokens: only.tokens };
  // Recount merged chunks: the sum of their pieces is only an estimate under BPE.
  const text = pieces.map((piece) => piece.text).join('');
  return { text, tokens: count(pieces[0]!.at, text) };
}

function splitToFit(text: string, at: number, tokens: number, level: number, count: Count, max: number): Piece[] {
  if (tokens <= max) return [{ text, tokens, at }];
  const splitter = SPLITTERS[level];
  const parts = splitter ? splitAfter(text, splitter) : halve(text);
  if (parts.length < 2) return splitter ? splitToFit(text, at, tokens, level + 1, count, max) : [{ text, tokens, at }];
  const next = splitter ? level + 1 : level;
  let offset = at;
  return parts.flatMap((part) => {
    const start = offset;
    offset += part.length;
    return splitToFit(part, start, count(start, part), next, count, max);
  });
}

/** Cuts `text` after each match of `separator`. */
function splitAfter(text: string, separator: RegExp): string[] {
  const parts: string[] = [];
  let start = 0;
  for (const match of text.matchAll(separator)) {
    const end = match.index + match[0].length;
    if (end < text.length) {
      parts.push(text.slice(start, end));
      start = end;
    }
  }
  parts.push(text.slice(start));
  // Separators are greedy and attach to the piece before them, so only a leading separator can
  // form a whitespace-only part; give it to the next part so every chunk has content.
  const [first, second, ...rest] = parts;
  if (first !== undefined && second !== undefined && first.trim() === '') return [first + second, ...rest];
  return parts;
}

/** Halves by code points (never inside a surrogate pair) for text with no usable boundary. */
function halve(text: string): string[] {
  const points = Array.from(text);
  if (points.length < 2) return [text];
  const mid = Math.floor(points.length / 2);
  return [points.slice(0, mid).join(''), points.slice(mid).join('')];
}
