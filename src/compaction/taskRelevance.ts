import { OpenTaskIndex } from './openTaskIndex.js';
import type { TermCache } from './termCache.js';

/** A chunk's relevance as last computed, and a task that has it (none when it is 0). */
interface Scored {
  value: number;
  best: Int32Array | undefined;
}

/**
 * Chunks' relevance to the open tasks (`relevance.ts`), computed with indexes kept from one
 * compaction to the next. Consecutive compactions of a session see nearly the same open tasks
 * (a few completed, perhaps one input's worth added) and half the same chunks, so:
 *
 * - the index of the open tasks is kept and told which of its tasks are still open; it is rebuilt
 *   only when a quarter of the open tasks are not in it, or it holds twice as many as are open;
 * - a chunk whose terms were scored in the previous compaction, and whose best task is still
 *   open, keeps that score, raised by the tasks opened since (any other task it could have was
 *   open then, and lower). By terms, not text: an item cut again re-chunks into texts that differ
 *   by an elision mark or a space, with the same terms (two thirds of a large session's chunks).
 *
 * Every score is the same number a comparison with every open task gives; the reuse is sound for
 * any sequence of calls (another session's compaction in between only makes less of it reusable).
 */
export class TaskRelevance {
  private main: OpenTaskIndex | undefined;
  private mainTerms = -1;
  private lastOpen = new Set<Int32Array>();
  /** Scores of the last compaction's chunks, by their terms (a chunk's score depends on nothing else). */
  private scored = new Map<string, Scored>();
  private readonly keys = new WeakMap<Int32Array, string>();
  private scoredTerms = -1;
  /** The indexes of the tasks outside the main one, for the current compaction. */
  private extra: OpenTaskIndex[] = [];
  /** Tasks compared by indexes no longer kept. */
  private comparedBefore = 0;

  constructor(private readonly terms: TermCache) {}

  /** Tasks compared in full with a chunk so far, all compactions together: a cost measure. */
  get compared(): number {
    return this.comparedBefore + (this.main?.compared ?? 0) + this.extra.reduce((n, index) => n + index.compared, 0);
  }

  /** Readies one compaction's open tasks; returns the relevance of a chunk's text to them. */
  forOpenTasks(openTasks: readonly string[]): (chunk: string) => number {
    const open = new Set<Int32Array>();
    for (const description of openTasks) {
      const ids = this.terms.taskTermIds(description);
      if (ids.length > 0) open.add(ids); // an identical description has the same array
    }
    const main = this.mainFor(open);
    const outside = [...open].filter((task) => !main.has(task));
    const opened = [...open].filter((task) => !this.lastOpen.has(task));
    this.comparedBefore += this.extra.reduce((n, index) => n + index.compared, 0);
    const others = outside.length > 0 ? new OpenTaskIndex(outside, this.terms.size) : undefined;
    const sameSet = opened.length === outside.length && opened.every((task, i) => task === outside[i]);
    const news = sameSet ? others : opened.length > 0 ? new OpenTaskIndex(opened, this.terms.size) : undefined;
    this.extra = [...new Set([others, news])].filter((index): index is OpenTaskIndex => index !== undefined);
    // Keys are term ids: ids that started afresh name other terms.
    const previous = this.scoredTerms === this.terms.generation ? this.scored : new Map<string, Scored>();
    this.scoredTerms = this.terms.generation;
    const scored = (this.scored = new Map<string, Scored>());
    this.lastOpen = open;
    return (chunk) => {
      const ids = this.terms.termIds(chunk);
      const key = this.keyOf(ids);
      const done = scored.get(key);
      if (done) return done.value;
      const known = previous.get(key);
      const reusable = known !== undefined && (known.best === undefined || open.has(known.best));
      const result = reusable ? { ...known } : best({ value: 0, best: undefined }, main, ids);
      best(result, reusable ? news : others, ids);
      scored.set(key, result);
      return result.value;
    };
  }

  /** The terms as a string, the same for the same set. */
  private keyOf(ids: Int32Array): string {
    let key = this.keys.get(ids);
    if (key === undefined) this.keys.set(ids, (key = Int32Array.from(ids).sort().join(',')));
    return key;
  }

  /** The kept index, restricted to `open`, or a new one when it no longer fits them. */
  private mainFor(open: Set<Int32Array>): OpenTaskIndex {
    let outside = 0;
    const current = this.main && this.mainTerms === this.terms.generation ? this.main : undefined;
    if (current) for (const task of open) if (!current.has(task)) outside++;
    if (current && outside * 4 <= open.size && current.size <= 2 * open.size) {
      current.only(open);
      return current;
    }
    this.comparedBefore += this.main?.compared ?? 0;
    this.mainTerms = this.terms.generation;
    return (this.main = new OpenTaskIndex(open, this.terms.size));
  }
}

/** `scored` raised to the relevance the index gives, if higher. */
function best(scored: Scored, index: OpenTaskIndex | undefined, chunk: Int32Array): Scored {
  if (!index) return scored;
  const value = index.relevance(chunk);
  if (value > scored.value) [scored.value, scored.best] = [value, index.best];
  return scored;
}
