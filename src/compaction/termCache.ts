import { termsOf } from './relevance.js';
import { TextCache } from './textCache.js';

/** How much a {@link TermCache} may hold. */
export interface TermCacheLimits {
  /**
   * Most characters of task descriptions remembered (default 32 Mi; chunks get a quarter more; see
   * `TextCache`). A session with 150 inputs of 60 KB has ~9 M characters of open tasks, all read at
   * each compaction: less than that, and their terms are found again each time.
   */
  maxChars?: number;
  /** Most distinct terms given ids (default 256 Ki); past it, the next compaction starts afresh. */
  maxTerms?: number;
}

/**
 * The terms of texts (see `termsOf`) as small integer ids, remembered by text. The compactor reads
 * the terms of every open task and every chunk at each compaction; in a session with tens of
 * thousands of open tasks that was most of the cost. A pure function of the text, so what is
 * remembered changes no result, only its cost. Ids are this cache's own, and stable until
 * {@link startCompaction} forgets them.
 */
export class TermCache {
  private ids = new Map<string, number>();
  private readonly texts: TextCache<Int32Array>;
  private readonly tasks: TextCache<Int32Array>;
  private readonly maxTerms: number;
  /** Bumped each time the ids start afresh: what was built on older ids must be rebuilt. */
  generation = 0;

  constructor(limits: TermCacheLimits = {}) {
    const maxChars = limits.maxChars ?? 32 * 1024 * 1024;
    this.texts = new TextCache(maxChars / 4);
    this.tasks = new TextCache(maxChars, false);
    this.maxTerms = limits.maxTerms ?? 256 * 1024;
  }

  /** How many ids have been given: every id is below it. */
  get size(): number {
    return this.ids.size;
  }

  /** The distinct terms of `text` (a chunk, say), as ids, in no particular order. Do not modify the array. */
  termIds(text: string): Int32Array {
    return this.texts.get(text, (t) => this.derive(t));
  }

  /**
   * As {@link termIds}, for a task's description: kept apart from chunks, which come and go, and
   * by the string itself (a description is whole text the session keeps, and the same string
   * comes back at each compaction: found without comparing its characters).
   */
  taskTermIds(description: string): Int32Array {
    return this.tasks.get(description, (t) => this.derive(t));
  }

  private derive(text: string): Int32Array {
    const terms = termsOf(text);
    const ids = new Int32Array(terms.size);
    let k = 0;
    for (const term of terms) {
      let id = this.ids.get(term);
      if (id === undefined) this.ids.set(term, (id = this.ids.size));
      ids[k++] = id;
    }
    return ids;
  }

  /**
   * Called before each compaction: forgets everything once there are too many terms. Never during
   * one, whose ids must stay comparable (one compaction's own terms may pass the limit a little).
   */
  startCompaction(): void {
    if (this.ids.size < this.maxTerms) return;
    this.ids = new Map();
    this.texts.clear();
    this.tasks.clear();
    this.generation++;
  }
}
