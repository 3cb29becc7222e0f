import type { ContextItem } from '../protocol/domain.js';
import { MAX_SLOT_PRIORITY, SLOT_PRIORITY } from './compactor.js';
import type { CompactionRequest, CompactionResult, Compactor } from './compactor.js';
import { bpeTokenCounter } from './tokenCounter.js';
import type { TokenCounter } from './tokenCounter.js';

/** Tuning of {@link createRelevanceCompactor}; every field is optional. */
export interface RelevanceCompactorOptions {
  /** Counts tokens; defaults to the cl100k_base BPE counter. */
  counter?: TokenCounter;
  /** Weight of recency (0 for the oldest item, 1 for the newest); default 0.5. */
  recencyWeight?: number;
  /** Weight of relevance to the open tasks (itself in [0, 1]); default 1, so relevance beats recency. */
  relevanceWeight?: number;
  /** Target maximum size of a chunk in tokens; default 64. */
  chunkTokens?: number;
}

interface Config {
  counter: TokenCounter;
  recencyWeight: number;
  relevanceWeight: number;
  chunkTokens: number;
}

/** A contiguous slice of an item's text; an item's chunks concatenate back to its exact text. */
export interface Chunk {
  text: string;
  tokens: number;
}

interface Candidate {
  item: number;
  index: number;
  tokens: number;
  score: number;
}

/** The id (and slot) of the generated summary item. */
export const SUMMARY_ID = 'summary';
const SUMMARY_HEADER = 'Summary of folded context:';
// Room kept free for the summary while filling: a share of what pinned items leave, at least enough
// for the header and one digest line (6 + 24 tokens), capped so a large budget is spent mostly on real
// context. When pinned items leave less than 4x the minimum, context itself is worth more than a digest.
const SUMMARY_SHARE = 0.1;
const SUMMARY_MAX_TOKENS = 128;
const SUMMARY_MIN_TOKENS = 32;
// A digest line is capped in tokens; the code-point cap only bounds the search on long texts.
const DIGEST_LINE_TOKENS = 24;
const DIGEST_CODE_POINTS = 160;
// Slot priority is a tie-break: small enough that it only outweighs a few positions of recency.
const SLOT_TIE_BREAK = 0.05;
// BPE is not additive: joining chunks can merge tokens or drop an elision marker, so a chunk whose
// estimate exceeds the room by a few tokens may still fit. Beyond this slack we skip the exact recount.
const ESTIMATE_SLACK = 4;
const ELISION = '…';

// Split levels, coarse to fine: paragraphs, sentences (Latin and CJK punctuation), words. Regexes
// rather than Intl.Segmenter, whose output depends on the ICU version and would break determinism
// across Node builds. Each separator stays attached to the piece before it, so pieces partition text.
const SPLITTERS: readonly RegExp[] = [
  /\n[ \t]*\n\s*/gu,
  /[.!?…]+["'”’)\]]*\s+|[。！？]+["'”’」』)\]]*\s*/gu,
  /\s+/gu,
];

/**
 * Creates the default compactor: keeps pinned and system items, then the chunks of other items that
 * score best on relevance to the open tasks and recency, and folds the rest into one summary item.
 * Pure and deterministic given a deterministic counter; the returned items never exceed the budget.
 */
export function createRelevanceCompactor(options: RelevanceCompactorOptions = {}): Compactor {
  const config: Config = {
    counter: options.counter ?? bpeTokenCounter,
    recencyWeight: nonNegative('recencyWeight', options.recencyWeight ?? 0.5),
    relevanceWeight: nonNegative('relevanceWeight', options.relevanceWeight ?? 1),
    chunkTokens: nonNegative('chunkTokens', options.chunkTokens ?? 64),
  };
  if (!Number.isInteger(config.chunkTokens) || config.chunkTokens < 1) {
    throw new RangeError(`chunkTokens must be a positive integer, got ${config.chunkTokens}`);
  }
  return { compact: (request) => compact(request, config) };
}

function nonNegative(name: string, value: number): number {
  if (!Number.isFinite(value) || value < 0) throw new RangeError(`${name} must be a finite number >= 0, got ${value}`);
  return value;
}

/** Per-call working state; nothing survives between calls, which keeps the compactor pure. */
class Plan {
  readonly whole: boolean[];
  readonly chunks: Chunk[][];
  readonly kept: Set<number>[];
  readonly text: (string | undefined)[];
  readonly cost: number[];

  constructor(readonly items: readonly ContextItem[]) {
    this.whole = items.map(() => false);
    this.chunks = items.map(() => []);
    this.kept = items.map(() => new Set<number>());
    this.text = items.map(() => undefined);
    this.cost = items.map(() => 0);
  }

  /** The item's text from its kept chunks: the original text when all are kept, else elided runs. */
  assemble(i: number): string {
    const chunks = this.chunks[i] ?? [];
    const kept = this.kept[i] ?? new Set<number>();
    if (kept.size === chunks.length) return this.items[i]?.text ?? '';
    const runs: string[] = [];
    let run = '';
    chunks.forEach((chunk, k) => {
      if (kept.has(k)) {
        run += chunk.text;
      } else if (run !== '') {
        runs.push(run.trim());
        run = '';
      }
    });
    if (run !== '') runs.push(run.trim());
    const head = kept.has(0) ? '' : `${ELISION} `;
    const tail = kept.has(chunks.length - 1) ? '' : ` ${ELISION}`;
    return head + runs.join(` ${ELISION} `) + tail;
  }
}

function compact(request: CompactionRequest, config: Config): CompactionResult {
  const { items, budget } = request;
  if (Number.isNaN(budget) || budget < 0) throw new RangeError(`budget must be >= 0, got ${budget}`);
  const sizes = items.map((item) => config.counter.count(item.text));
  const tokensBefore = sum(sizes);
  if (tokensBefore <= budget) return { items: [...items], folded: [], tokensBefore, tokensAfter: tokensBefore };

  const plan = new Plan(items);
  const pinnedUsed = admitPinned(plan, sizes, budget);
  const room = budget - pinnedUsed;
  const candidates = prepareCandidates(plan, sizes, request.openTasks, config);
  const filled = fill(plan, candidates, room - summaryReserve(room), config.counter);
  const summary = buildSummary(plan, room - filled, config.counter);
  return assemble(plan, summary, tokensBefore, pinnedUsed + filled);
}

function summaryReserve(room: number): number {
  if (room < 4 * SUMMARY_MIN_TOKENS) return 0;
  return Math.min(SUMMARY_MAX_TOKENS, Math.max(SUMMARY_MIN_TOKENS, Math.floor(room * SUMMARY_SHARE)));
}

const isPinned = (item: ContextItem): boolean => item.pinned || item.slot === 'system';
const isOldSummary = (item: ContextItem): boolean => item.slot === 'summary' || item.id === SUMMARY_ID;
const sum = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0);

/** Keeps pinned items whole while they fit, system items first, each group in original order. */
function admitPinned(plan: Plan, sizes: readonly number[], budget: number): number {
  const pinned = plan.items.flatMap((item, i) => (isPinned(item) ? [i] : []));
  const order = [
    ...pinned.filter((i) => plan.items[i]?.slot === 'system'),
    ...pinned.filter((i) => plan.items[i]?.slot !== 'system'),
  ];
  let used = 0;
  for (const i of order) {
    const size = sizes[i] ?? 0;
    if (used + size > budget) continue;
    plan.whole[i] = true;
    used += size;
  }
  return used;
}

/** Chunks and scores every non-pinned item except old summaries, which the new summary replaces. */
function prepareCandidates(plan: Plan, sizes: readonly number[], openTasks: readonly string[], config: Config): Candidate[] {
  const tasks = openTasks.map(termsOf).filter((terms) => terms.size > 0);
  const last = Math.max(1, plan.items.length - 1);
  const candidates: Candidate[] = [];
  plan.items.forEach((item, i) => {
    if (isPinned(item) || isOldSummary(item)) return;
    // Empty texts cost nothing, so they are always kept whole.
    if (sizes[i] === 0) return void (plan.whole[i] = true);
    const chunks = chunkText(item.text, config.counter, config.chunkTokens);
    plan.chunks[i] = chunks;
    const base = config.recencyWeight * (i / last) + (SLOT_TIE_BREAK * SLOT_PRIORITY[item.slot]) / MAX_SLOT_PRIORITY;
    chunks.forEach((chunk, index) => {
      const score = base + config.relevanceWeight * relevance(termsOf(chunk.text), tasks);
      candidates.push({ item: i, index, tokens: chunk.tokens, score });
    });
  });
  // Total order: best score, then most recent item, then earliest chunk, so ties are deterministic.
  return candidates.sort((a, b) => b.score - a.score || b.item - a.item || a.index - b.index);
}

/** Greedily adds the best chunks while the exact recount of their item keeps the total within `limit`. */
function fill(plan: Plan, candidates: readonly Candidate[], limit: number, counter: TokenCounter): number {
  let used = 0;
  for (const c of candidates) {
    if (used + c.tokens > limit + ESTIMATE_SLACK) continue;
    const kept = plan.kept[c.item] as Set<number>;
    kept.add(c.index);
    const text = plan.assemble(c.item);
    const cost = counter.count(text);
    const next = used - (plan.cost[c.item] ?? 0) + cost;
    if (next > limit) {
      kept.delete(c.index);
      continue;
    }
    used = next;
    plan.cost[c.item] = cost;
    plan.text[c.item] = text;
  }
  return used;
}

/**
 * Splits `text` into chunks of at most about `maxTokens` tokens, at paragraph, then sentence, then
 * word boundaries, halving by code points as a last resort. The chunks concatenate back to `text`.
 */
export function chunkText(text: string, counter: TokenCounter, maxTokens: number): Chunk[] {
  if (text === '') return [];
  const pieces = splitToFit(text, counter.count(text), 0, counter, maxTokens);
  const merged: string[] = [];
  let current = '';
  let tokens = 0;
  for (const piece of pieces) {
    if (current !== '' && tokens + piece.tokens > maxTokens) {
      merged.push(current);
      [current, tokens] = ['', 0];
    }
    current += piece.text;
    tokens += piece.tokens;
  }
  merged.push(current);
  // Recount merged chunks: the sum of their pieces is only an estimate under BPE.
  return merged.map((chunk) => ({ text: chunk, tokens: counter.count(chunk) }));
}

function splitToFit(text: string, tokens: number, level: number, counter: TokenCounter, max: number): Chunk[] {
  if (tokens <= max) return [{ text, tokens }];
  const splitter = SPLITTERS[level];
  const parts = splitter ? splitAfter(text, splitter) : halve(text);
  if (parts.length < 2) return splitter ? splitToFit(text, tokens, level + 1, counter, max) : [{ text, tokens }];
  const next = splitter ? level + 1 : level;
  return parts.flatMap((part) => splitToFit(part, counter.count(part), next, counter, max));
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

const WORD = /[\p{L}\p{M}\p{N}]+(?:['’_-][\p{L}\p{M}\p{N}]+)*/gu;
// Scripts written without spaces: a "word" there is a whole phrase, so we compare character bigrams.
const UNSPACED = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Thai}\p{Script=Lao}\p{Script=Khmer}\p{Script=Myanmar}]/u;
const STOPWORDS = new Set(
  'a an and are as at be by for from has have in is it its of on or that the this to was were will with'.split(' '),
);

/** Lower-cased, NFKC-normalised content words of `text` (character bigrams for unspaced scripts). */
function termsOf(text: string): Set<string> {
  const terms = new Set<string>();
  for (const [word] of text.normalize('NFKC').toLowerCase().matchAll(WORD)) {
    if (!UNSPACED.test(word)) {
      if (!STOPWORDS.has(word)) terms.add(word);
      continue;
    }
    const points = Array.from(word);
    if (points.length === 1) terms.add(word);
    for (let k = 0; k + 1 < points.length; k++) terms.add(`${points[k]}${points[k + 1]}`);
  }
  return terms;
}

/**
 * Best share of any one task's terms found in the chunk, in [0, 1]. Containment rather than Jaccard:
 * Jaccard shrinks with chunk vocabulary, making it tiny and incomparable with the recency term.
 */
function relevance(chunk: ReadonlySet<string>, tasks: readonly ReadonlySet<string>[]): number {
  let best = 0;
  for (const task of tasks) {
    let shared = 0;
    for (const term of task) if (chunk.has(term)) shared++;
    best = Math.max(best, shared / task.size);
  }
  return best;
}

/** Digest lines, oldest first: old summaries' lines, then the start of each folded item's text. */
function digestLines(plan: Plan, counter: TokenCounter): string[] {
  return plan.items.flatMap((item, i) => {
    if (plan.whole[i] || plan.text[i] === item.text) return [];
    if (!isPinned(item) && isOldSummary(item)) {
      const lines = item.text.split('\n').map((line) => line.trim());
      return lines.filter((line) => line !== '' && line !== SUMMARY_HEADER).map((line) => clip('', line, counter));
    }
    const chunks = plan.chunks[i] ?? [];
    const folded = chunks.length === 0 ? [item.text] : foldedRuns(chunks, plan.kept[i] as Set<number>);
    const text = folded.map((run) => run.trim()).join(` ${ELISION} `).trim();
    return text === '' ? [] : [clip(`- ${item.id}: `, text, counter)];
  });
}

/** The texts of the maximal runs of chunks that were not kept. */
function foldedRuns(chunks: readonly Chunk[], kept: ReadonlySet<number>): string[] {
  const runs: string[] = [];
  chunks.forEach((chunk, k) => {
    if (kept.has(k)) return;
    if (k > 0 && !kept.has(k - 1)) runs[runs.length - 1] += chunk.text;
    else runs.push(chunk.text);
  });
  return runs;
}

/**
 * One digest line: `prefix` and the longest start of `text` (cut at a space when possible) within
 * DIGEST_LINE_TOKENS. Capping by tokens rather than words keeps CJK or emoji-heavy lines as small
 * as Latin ones, so a line always fits the minimum summary reserve. Lines that fit are unchanged,
 * which keeps carried-forward lines stable across compactions.
 */
function clip(prefix: string, text: string, counter: TokenCounter): string {
  const flat = text.replace(/\s+/gu, ' ');
  if (counter.count(prefix + flat) <= DIGEST_LINE_TOKENS) return prefix + flat;
  const points = Array.from(flat).slice(0, DIGEST_CODE_POINTS);
  const line = (n: number): string => `${prefix}${points.slice(0, n).join('').trimEnd()}${ELISION}`;
  // Binary search for the longest prefix that fits; the count grows (near-)monotonically with n.
  let lo = 0;
  let hi = points.length;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (counter.count(line(mid)) <= DIGEST_LINE_TOKENS) lo = mid;
    else hi = mid - 1;
  }
  const cut = points.slice(0, lo).join('');
  const space = cut.lastIndexOf(' ');
  return `${prefix}${(space > 0 ? cut.slice(0, space) : cut).trimEnd()}${ELISION}`;
}

interface Summary {
  item: ContextItem;
  tokens: number;
}

/** The largest suffix of the digest (newest lines) that fits `room`, or null if nothing fits. */
function buildSummary(plan: Plan, room: number, counter: TokenCounter): Summary | null {
  const lines = digestLines(plan, counter);
  // Never emit a second item with the summary id (possible only if a pinned item already uses it).
  const clash = plan.items.some((item, i) => plan.whole[i] && item.id === SUMMARY_ID);
  if (lines.length === 0 || clash) return null;
  const render = (from: number): string => [SUMMARY_HEADER, ...lines.slice(from)].join('\n');
  // Binary search on how many old lines to drop; `best` always holds the last suffix that fitted.
  let best: Summary | null = null;
  let lo = 0;
  let hi = lines.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const text = render(mid);
    const tokens = counter.count(text);
    if (tokens <= room) {
      best = { item: { id: SUMMARY_ID, slot: 'summary', text, pinned: false }, tokens };
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return best;
}

/** Output in original order, the summary right after the leading system items. */
function assemble(plan: Plan, summary: Summary | null, tokensBefore: number, used: number): CompactionResult {
  const items: ContextItem[] = [];
  const folded = new Set<string>();
  plan.items.forEach((item, i) => {
    const text = plan.whole[i] ? item.text : plan.text[i];
    if (text !== item.text) folded.add(item.id);
    if (text !== undefined) items.push(text === item.text ? item : { ...item, text });
  });
  if (!summary) return { items, folded: [...folded], tokensBefore, tokensAfter: used };
  const at = items.findIndex((item) => item.slot !== 'system');
  items.splice(at === -1 ? items.length : at, 0, summary.item);
  return { items, folded: [...folded], tokensBefore, tokensAfter: used + summary.tokens };
}
