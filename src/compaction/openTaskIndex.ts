/** Postings of a term are grouped by where the term sits in a task's terms, rarest first, in eighths. */
const BUCKETS = 8;

/**
 * Tasks' terms, indexed so that a chunk's relevance (the largest share of one task's terms found in
 * the chunk, `relevance.ts`) is found without comparing the chunk with every task. Compared with
 * all of them, a compaction cost chunks × open tasks: with 27,000 open tasks (150 inputs of 190
 * tasks) some 2,000 chunks took a minute.
 *
 * Exact, by prefix filtering: order each task's terms from rarest to most common (among the open
 * tasks). A task that shares `k` of its `n` terms with the chunk shares one of its first `n - k + 1`,
 * so to beat the best share found so far, `a/b`, it must share a term at a position `pos` with
 * `a·n < b·(n - pos)`. Each chunk term's postings are read in order of `pos/n` until no later one can,
 * and only the tasks reached are compared in full. The result is the same number as comparing all:
 * the best task is always reached, and its share is computed the same way (`shared / size`).
 *
 * Tasks are term sets from a `TermCache` (ids as it gives them). An index outlives a compaction
 * (`TaskRelevance`): {@link only} restricts it to the tasks still open, and the terms' order stays
 * the one it was built with, which any fixed order allows.
 */
export class OpenTaskIndex {
  /** Cache id → this index's id of the term, or -1 when no open task has it. */
  private readonly local: Int32Array;
  /** How many tasks have each term. */
  private readonly df: Int32Array;
  /** Task `t`'s terms, rarest first: `terms[starts[t] .. starts[t + 1]]`. */
  private readonly starts: Int32Array;
  private readonly terms: Int32Array;
  /** Postings of term `w`, bucket `k`: `offsets[w·B + k] .. offsets[w·B + k + 1]`. */
  private readonly offsets: Int32Array;
  private readonly postTask: Int32Array;
  private readonly postPos: Int32Array;
  /** Per term: the stamp of the chunk being scored if the chunk has it. */
  private readonly mark: Int32Array;
  /** Per task: the stamp of the chunk it was last compared with. */
  private readonly seen: Int32Array;
  private stamp = 0;
  /** The best share of the chunk being scored, as a fraction, and the task that has it (-1: none). */
  private bestA = 0;
  private bestB = 1;
  private bestTask = -1;
  /** The tasks, smallest first, and each one's place. */
  private readonly tasks: Int32Array[];
  private readonly places = new Map<Int32Array, number>();
  /** Per task: `openStamp` when it is open; undefined while every task counts. */
  private open: Int32Array | undefined;
  private openStamp = 0;
  /** Tasks compared with a chunk in full so far: the cost the index exists to keep down. */
  compared = 0;

  /** Indexes distinct, non-empty term sets; `vocabulary`: every id in them is below it. */
  constructor(taskTerms: Iterable<Int32Array>, vocabulary: number) {
    const tasks = (this.tasks = bySize(taskTerms));
    tasks.forEach((ids, t) => this.places.set(ids, t));
    this.starts = new Int32Array(tasks.length + 1);
    tasks.forEach((ids, t) => (this.starts[t + 1] = this.starts[t]! + ids.length));
    this.local = new Int32Array(vocabulary).fill(-1);
    const unsorted = new Int32Array(this.starts[tasks.length]!);
    this.df = this.localIds(tasks, unsorted);
    this.terms = new Int32Array(unsorted.length);
    this.offsets = new Int32Array(this.df.length * BUCKETS + 1);
    this.postTask = new Int32Array(unsorted.length);
    this.postPos = new Int32Array(unsorted.length);
    this.fillPostings(unsorted);
    this.mark = new Int32Array(this.df.length);
    this.seen = new Int32Array(tasks.length);
  }

  /** How many tasks the index holds, open or not. */
  get size(): number {
    return this.tasks.length;
  }

  /** Whether the index holds this term set. */
  has(task: Int32Array): boolean {
    return this.places.has(task);
  }

  /** Counts from now on only the tasks in `open` (the others stay in the index, skipped). */
  only(open: Iterable<Int32Array>): void {
    this.open ??= new Int32Array(this.tasks.length);
    const stamp = ++this.openStamp;
    for (const task of open) {
      const t = this.places.get(task);
      if (t !== undefined) this.open[t] = stamp;
    }
  }

  /** The task whose share the last {@link relevance} returned, or undefined if it was 0. */
  get best(): Int32Array | undefined {
    return this.bestTask < 0 ? undefined : this.tasks[this.bestTask];
  }

  /** The relevance of a chunk with these terms (cache ids): as `relevance(chunkTerms, taskTerms)`. */
  relevance(chunk: Int32Array): number {
    const stamp = ++this.stamp;
    const words: number[] = [];
    for (let i = 0; i < chunk.length; i++) {
      const id = chunk[i]!;
      const word = id < this.local.length ? this.local[id]! : -1;
      if (word < 0) continue;
      this.mark[word] = stamp;
      words.push(word);
    }
    // The tasks' order (rarest first): a task first reached through the i-th word has none of the
    // words before it, so shares at most `m - i` of them; and rare words reach few tasks.
    words.sort((x, y) => this.df[x]! - this.df[y]! || x - y);
    [this.bestA, this.bestB, this.bestTask] = [0, 1, -1];
    for (let i = 0; i < words.length && this.bestA !== this.bestB; i++) this.scan(words[i]!, words.length - i, stamp);
    return this.bestA / this.bestB;
  }

  /**
   * Compares the chunk with the open tasks reached through `word` that could beat the best share,
   * a/b (compared exactly, as fractions). One loop, locals only: it runs for millions of postings
   * per compaction.
   */
  private scan(word: number, left: number, stamp: number): void {
    const { offsets, postTask, postPos, starts, terms, mark, seen, open, openStamp } = this;
    let a = this.bestA;
    let b = this.bestB;
    let bestTask = this.bestTask;
    let compared = 0;
    for (let k = 0; k < BUCKETS && k * b < BUCKETS * (b - a); k++) {
      const end = offsets[word * BUCKETS + k + 1]!;
      for (let e = offsets[word * BUCKETS + k]!; e < end; e++) {
        const t = postTask[e]!;
        const to = starts[t + 1]!;
        const size = to - starts[t]!;
        // Tasks come smallest first: once `left` words cannot beat the best share, no later one can.
        if (a * size >= b * left) break;
        const from = starts[t]! + postPos[e]!;
        // Shares at most min(its terms from this one on, the chunk's words from this one on).
        if (seen[t] === stamp || a * size >= b * Math.min(to - from, left) || (open && open[t] !== openStamp)) continue;
        seen[t] = stamp;
        compared++;
        let shared = 0;
        for (let j = from; j < to; j++) {
          if (mark[terms[j]!] === stamp) shared++;
          else if (b * (shared + to - j - 1) <= a * size) break; // the rest cannot beat a/b
        }
        if (shared * b > a * size) [a, b, bestTask] = [shared, size, t];
      }
    }
    [this.bestA, this.bestB, this.bestTask] = [a, b, bestTask];
    this.compared += compared;
  }

  /** Writes the tasks' terms as this index's ids into `out`; returns how many tasks have each. */
  private localIds(tasks: readonly Int32Array[], out: Int32Array): Int32Array {
    let df: Int32Array<ArrayBuffer> = new Int32Array(1024);
    let n = 0;
    let at = 0;
    for (const ids of tasks) {
      for (let k = 0; k < ids.length; k++) {
        let word = this.local[ids[k]!]!;
        if (word < 0) {
          if (n === df.length) df = grow(df);
          word = this.local[ids[k]!] = n++;
        }
        df[word]!++;
        out[at++] = word;
      }
    }
    return df.slice(0, n);
  }

  /**
   * Fills each task's terms rarest first, and the postings by term and bucket, without sorting a
   * task's terms: the terms are visited rarest first (one sort of the vocabulary) and each is
   * appended to the tasks that have it, which gives its position there. Within a bucket, postings
   * are by task (smallest first).
   */
  private fillPostings(unsorted: Int32Array): void {
    const { starts, df, offsets } = this;
    const tasksOf = new Int32Array(unsorted.length);
    const termStart = new Int32Array(df.length + 1);
    for (let w = 0; w < df.length; w++) termStart[w + 1] = termStart[w]! + df[w]!;
    const next = termStart.slice(0, -1);
    for (let t = 0; t + 1 < starts.length; t++) for (let j = starts[t]!; j < starts[t + 1]!; j++) tasksOf[next[unsorted[j]!]!++] = t;
    const filled = new Int32Array(starts.length - 1);
    const count = new Int32Array(BUCKETS + 1);
    for (const w of rarestFirst(df)) {
      const from = termStart[w]!;
      const to = termStart[w + 1]!;
      count.fill(0);
      for (let e = from; e < to; e++) {
        const t = tasksOf[e]!;
        const pos = filled[t]!++;
        this.terms[starts[t]! + pos] = w;
        this.postPos[e] = pos; // parked here until placed by bucket below
        count[Math.floor((BUCKETS * pos) / (starts[t + 1]! - starts[t]!)) + 1]!++;
      }
      for (let k = 0; k < BUCKETS; k++) offsets[w * BUCKETS + k + 1] = (count[k + 1]! += count[k]!) + from;
      offsets[w * BUCKETS] = from;
      const pos = this.postPos.slice(from, to);
      for (let e = from; e < to; e++) {
        const t = tasksOf[e]!;
        const p = pos[e - from]!;
        const at = from + count[Math.floor((BUCKETS * p) / (starts[t + 1]! - starts[t]!))]!++;
        this.postTask[at] = t;
        this.postPos[at] = p;
      }
    }
  }
}

/** Term sets, smallest first (a counting sort by size). */
function bySize(tasks: Iterable<Int32Array>): Int32Array[] {
  const bySize: Int32Array[][] = [];
  for (const ids of tasks) (bySize[ids.length] ??= []).push(ids);
  return bySize.flat();
}

/** Term ids ordered by how many tasks have them, fewest first, ties by id. */
function rarestFirst(df: Int32Array): Int32Array {
  // Numeric keys (frequency above id) sort natively; exact, being far below 2^53.
  const span = 2 ** Math.ceil(Math.log2(df.length + 1));
  const keys = new Float64Array(df.length);
  for (let w = 0; w < df.length; w++) keys[w] = df[w]! * span + w;
  keys.sort();
  return Int32Array.from(keys, (key) => key % span);
}

function grow(values: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> {
  const bigger = new Int32Array(values.length * 2);
  bigger.set(values);
  return bigger;
}
