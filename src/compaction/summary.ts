import type { ContextItem } from '../protocol/domain.js';
import type { Chunk } from './chunker.js';
import { ELISION, isPinned } from './plan.js';
import type { Plan } from './plan.js';
import type { TokenCounter } from './tokenCounter.js';

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

/** The generated summary item and its token count. */
export interface Summary {
  item: ContextItem;
  tokens: number;
}

/** Tokens to keep free for the summary out of `room`, what pinned items leave of the budget. */
export function summaryReserve(room: number): number {
  if (room < 4 * SUMMARY_MIN_TOKENS) return 0;
  return Math.min(SUMMARY_MAX_TOKENS, Math.max(SUMMARY_MIN_TOKENS, Math.floor(room * SUMMARY_SHARE)));
}

/** A summary from an earlier compaction; the new summary replaces it, carrying its lines forward. */
export const isOldSummary = (item: ContextItem): boolean => item.slot === 'summary' || item.id === SUMMARY_ID;

/** The largest suffix of the digest (newest lines) that fits `room`, or null if nothing fits. */
export function buildSummary(plan: Plan, room: number, counter: TokenCounter): Summary | null {
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
