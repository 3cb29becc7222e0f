/**
 * Low-level text helpers for planning: where URLs and code spans are (so sentence splitting leaves
 * them whole), and a stable hash for task ids. All pure and deterministic.
 */

/** A half-open range `[start, end)` of a string. */
export interface Span {
  start: number;
  end: number;
}

/** A URL found in text: the URL as it should be attached, and where it sits. */
export interface FoundUrl extends Span {
  url: string;
}

// What a URL in prose never contains: whitespace, the delimiters RFC 3986 leaves out, and CJK text
// and full-width punctuation. The last matters because Japanese and Chinese put a URL right against
// the next word or a `。` with no space in between; raw CJK in a path is rare (it is %-encoded).
const URL_RE = /https?:\/\/[^\s<>"`{}|\\^\u3000-\u30ff\u3400-\u9fff\uac00-\ud7af\uff00-\uffef]+/giu;

// Punctuation that, at the end of a URL, almost always belongs to the sentence around it.
const TRAILING = new Set(['.', ',', ';', ':', '!', '?', "'", '"', '*']);

const PAIRS: Record<string, string> = { ')': '(', ']': '[' };
const BRACKETS = new Set([...Object.keys(PAIRS), ...Object.values(PAIRS)]);

/** Every http(s) URL in `text`, in order, without trailing sentence punctuation. */
export function findUrls(text: string): FoundUrl[] {
  const found: FoundUrl[] = [];
  for (const match of text.matchAll(URL_RE)) {
    const url = trimUrl(match[0]);
    // "https://" followed only by punctuation is not a URL anyone can fetch.
    if (!/^https?:\/\/[^./?#]/i.test(url)) continue;
    found.push({ url, start: match.index, end: match.index + url.length });
  }
  return found;
}

/**
 * Drops trailing punctuation; a closing bracket goes only when the URL has more of them than
 * opening ones, so `(see https://en.wikipedia.org/wiki/Foo_(bar))` keeps `Foo_(bar)`.
 */
function trimUrl(raw: string): string {
  // Bracket counts taken once and kept as characters are dropped, and one cut at the end: a URL
  // ending in thousands of `)` must cost as much as its length, not its length squared.
  const counts = new Map<string, number>();
  for (const ch of raw) if (BRACKETS.has(ch)) counts.set(ch, (counts.get(ch) ?? 0) + 1);
  let end = raw.length;
  while (end > 0) {
    const last = raw[end - 1]!;
    const open = PAIRS[last];
    if (!TRAILING.has(last) && !(open !== undefined && (counts.get(last) ?? 0) > (counts.get(open) ?? 0))) break;
    counts.set(last, (counts.get(last) ?? 0) - 1);
    end--;
  }
  return raw.slice(0, end);
}

/**
 * Every markdown code span in `text`: a run of N backticks up to the next run of exactly N
 * (CommonMark's rule, so ``a ` b`` is one span). An unclosed run is literal text.
 */
export function findCodeSpans(text: string): Span[] {
  const spans: Span[] = [];
  let i = text.indexOf('`');
  while (i >= 0) {
    const n = runLength(text, i);
    const close = findRun(text, i + n, n);
    if (close < 0) {
      i = text.indexOf('`', i + n);
    } else {
      spans.push({ start: i, end: close + n });
      i = text.indexOf('`', close + n);
    }
  }
  return spans;
}

function runLength(text: string, at: number): number {
  let n = 0;
  while (text[at + n] === '`') n++;
  return n;
}

function findRun(text: string, from: number, n: number): number {
  for (let i = text.indexOf('`', from); i >= 0; i = text.indexOf('`', i)) {
    const len = runLength(text, i);
    if (len === n) return i;
    i += len;
  }
  return -1;
}

/** Whether index `i` falls inside any of `spans`. */
export function insideAny(spans: readonly Span[], i: number): boolean {
  return spans.some((s) => i >= s.start && i < s.end);
}

const encoder = new TextEncoder();

/**
 * FNV-1a 32-bit over the UTF-8 bytes of `text`, as 8 lowercase hex digits. Not cryptographic: it
 * only has to be stable across runs and platforms, and short enough to read in an id.
 */
export function fnv1a32(text: string): string {
  let hash = 0x811c9dc5;
  for (const byte of encoder.encode(text)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0).toString(16).padStart(8, '0');
}
