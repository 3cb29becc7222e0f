import { findCodeSpans, findUrls, insideAny } from './textSpans.js';

// CJK terminators end a sentence outright: CJK text puts no space after them.
const CJK_TERMINATORS = new Set(['。', '！', '？']);
const TERMINATORS = new Set(['.', '!', '?', '…', ...CJK_TERMINATORS]);
// Quotes and brackets that close over a sentence's end: `He said "stop." Then…` ends after the quote.
const CLOSERS = new Set(['"', "'", '”', '’', '»', ')', ']', '」', '』', '）', '】']);

// Abbreviations whose dot never ends a sentence (English, German, Russian), compared lowercased.
const ABBREVIATIONS = new Set([
  'dr.', 'mr.', 'mrs.', 'ms.', 'prof.', 'vs.', 'cf.', 'st.', 'approx.', 'incl.', 'fig.', 'resp.',
  'bzw.', 'ca.', 'nr.', 'evtl.', 'vgl.', 'см.', 'стр.', 'г.',
]);
// Abbreviations that often do end a sentence: they end one only when a capital letter follows.
const ETC_LIKE = new Set(['etc.', 'usw.', 'т.д.', 'т.п.', 'др.']);
// Dotted initialisms such as e.g., i.e., z.B., d.h., т.е.: one or two letters and a dot, twice or more.
const DOTTED = /^(?:\p{L}{1,2}\.){2,}$/u;

/**
 * Splits prose into sentences at `.`, `!`, `?`, `…` and CJK `。！？`, keeping each terminator (and
 * any closing quote after it) with its sentence. A dot ends a sentence only when whitespace or the
 * end follows, so decimals (3.14), file names (index.ts) and versions stay whole; dots inside URLs
 * and code spans, and after known abbreviations, never end one. Returns trimmed, non-empty parts.
 */
export function splitSentences(text: string): string[] {
  const guarded = [...findUrls(text), ...findCodeSpans(text)];
  const parts: string[] = [];
  let start = 0;
  let i = 0;
  while (i < text.length) {
    if (!TERMINATORS.has(text[i] ?? '') || insideAny(guarded, i)) {
      i++;
      continue;
    }
    const { next, boundary } = scanTerminator(text, i);
    if (boundary) {
      parts.push(text.slice(start, next));
      start = next;
    }
    i = next;
  }
  parts.push(text.slice(start));
  return parts.map((p) => p.trim()).filter((p) => p.length > 0);
}

/** Reads the terminator run at `i` (e.g. `?!`, `...`, `."`) and decides whether it ends a sentence. */
function scanTerminator(text: string, i: number): { next: number; boundary: boolean } {
  let runEnd = i;
  while (runEnd < text.length && TERMINATORS.has(text[runEnd] ?? '')) runEnd++;
  let next = runEnd;
  while (next < text.length && CLOSERS.has(text[next] ?? '')) next++;
  const run = text.slice(i, runEnd);
  if ([...run].some((c) => CJK_TERMINATORS.has(c))) return { next, boundary: true };
  if (next < text.length && !/\s/u.test(text[next] ?? '')) return { next, boundary: false };
  if (/^(?:\.{2,}|…)$/u.test(run)) return { next, boundary: capitalFollows(text, next) };
  if (run !== '.') return { next, boundary: true };
  const word = wordBefore(text, i);
  if (ETC_LIKE.has(word)) return { next, boundary: capitalFollows(text, next) };
  return { next, boundary: !(ABBREVIATIONS.has(word) || DOTTED.test(word)) };
}

/** The whitespace-delimited word ending with the dot at `dot`, lowercased, opening brackets dropped. */
function wordBefore(text: string, dot: number): string {
  let from = dot;
  while (from > 0 && !/\s/u.test(text[from - 1] ?? '')) from--;
  return text
    .slice(from, dot + 1)
    .replace(/^[("'“‘«[]+/u, '')
    .toLowerCase();
}

/** Whether the next non-space character after `from` is anything but a lowercase letter. */
function capitalFollows(text: string, from: number): boolean {
  const rest = text.slice(from).trimStart();
  return rest.length === 0 || !/^\p{Ll}/u.test(rest);
}
