import type { Chunk } from './chunker.js';
import { ELISION } from './plan.js';
import { lastAtMost, type TextUnits, type UnitCache } from './textUnits.js';
import { isWhitespace, MAX_PIECE } from './tokenCounter.js';

/** One run of kept chunks as `Plan.assemble` writes it: the trimmed span `[p, q)` of the item's text. */
interface Run {
  p: number;
  q: number;
  /** What precedes it in the assembled text's unit: a space (after an elision mark) or nothing. */
  pre: string;
}

/**
 * The exact `bpeTokenCounter` count of the text `Plan.assemble` makes of an item's kept chunks,
 * kept up to date as chunks are added. `fill` needs that count after every chunk it adds; counted
 * afresh, each costs the whole item (a 60 KB input kept chunk by chunk was tokenized some 230
 * times, seconds per compaction). Here a chunk costs the few units at the edges of the run it joins
 * (see `textUnits.ts`): the assembled text is runs of the item's text, trimmed, between elision
 * marks, so its units are the item's own units inside the runs, the edges of each run and the marks.
 * Where a cut for length can fall on an unsafe space, the pieces are walked over the runs (a step
 * per 2,048 characters) and corrected. An item this cannot follow (a whitespace-only chunk makes an
 * empty run; unsafe spaces together with long runs move the pieces' starts) answers undefined and
 * is counted directly.
 */
export class KeptCost {
  /** Start of each chunk in the item's text; `offsets[n]` is its length. */
  private readonly offsets: Int32Array;
  private readonly kept: Uint8Array;
  /** At either end of a run of kept chunks, the chunk at its other end. */
  private readonly otherEnd: Int32Array;
  /** Tokens of the units of each run, at its first chunk. */
  private readonly runTokens: Float64Array;
  private runs = 0;
  private keptCount = 0;
  private unitsTotal = 0;
  /** The run {@link costWith} last made and its tokens, for {@link add} to keep. */
  private last = { a: -1, b: -1, tokens: 0 };
  readonly exact: boolean;

  constructor(
    private readonly units: TextUnits,
    chunks: readonly Chunk[],
    private readonly whole: number,
    private readonly cache: UnitCache,
  ) {
    const n = chunks.length;
    this.offsets = new Int32Array(n + 1);
    chunks.forEach((chunk, k) => (this.offsets[k + 1] = this.offsets[k]! + chunk.text.length));
    this.kept = new Uint8Array(n);
    this.otherEnd = new Int32Array(n);
    this.runTokens = new Float64Array(n);
    const blank = chunks.some((chunk) => chunk.text.trim() === '');
    this.exact = !blank && this.offsets[n] === units.text.length && !(units.unsafeSpaces && units.longRuns);
  }

  /** Tokens of the assembled text once chunk `k` (not kept yet) is kept too; undefined when not exact. */
  costWith(k: number): number | undefined {
    if (!this.exact) return undefined;
    const n = this.kept.length;
    if (this.keptCount + 1 === n) return this.whole; // all kept: the item's own text
    const { left, right, a, b } = this.neighbours(k);
    this.last = { a, b, tokens: this.runCost(a, b) };
    const units = this.unitsTotal + this.last.tokens - (left ? this.runTokens[a]! : 0) - (right ? this.runTokens[k + 1]! : 0);
    const runs = this.runs + 1 - (left ? 1 : 0) - (right ? 1 : 0);
    const head = this.kept[0] === 0 && k !== 0;
    const tail = this.kept[n - 1] === 0 && k !== n - 1;
    const marks = (head ? this.cache.count(ELISION) : 0) + (runs - 1 + (tail ? 1 : 0)) * this.cache.count(` ${ELISION}`);
    return units + marks + (this.units.unsafeSpaces ? this.correction(k, head, tail) : 0);
  }

  /** Keeps chunk `k` (after {@link costWith} said it fits). */
  add(k: number): void {
    const { left, right, a, b } = this.neighbours(k);
    const cost = this.last.a === a && this.last.b === b ? this.last.tokens : this.runCost(a, b);
    this.unitsTotal += cost - (left ? this.runTokens[a]! : 0) - (right ? this.runTokens[k + 1]! : 0);
    this.runs += 1 - (left ? 1 : 0) - (right ? 1 : 0);
    this.kept[k] = 1;
    this.keptCount++;
    this.otherEnd[a] = b;
    this.otherEnd[b] = a;
    this.runTokens[a] = cost;
  }

  /** The runs `k` joins, and the run `[a, b]` (chunk indices) it makes. */
  private neighbours(k: number): { left: boolean; right: boolean; a: number; b: number } {
    const left = k > 0 && this.kept[k - 1] === 1;
    const right = k + 1 < this.kept.length && this.kept[k + 1] === 1;
    return { left, right, a: left ? this.otherEnd[k - 1]! : k, b: right ? this.otherEnd[k + 1]! : k };
  }

  /** The run of chunks `a..b` as assemble writes it: trimmed, after a space unless it starts the text. */
  private run(a: number, b: number): Run {
    const text = this.units.text;
    let p = this.offsets[a]!;
    let q = this.offsets[b + 1]!;
    while (isWhitespace(text.charCodeAt(p))) p++;
    while (isWhitespace(text.charCodeAt(q - 1))) q--;
    return { p, q, pre: a === 0 ? '' : ' ' };
  }

  /** Tokens of the units of run `a..b`: its first unit (with the space before it), the inner ones, its last. */
  private runCost(a: number, b: number): number {
    const { p, q, pre } = this.run(a, b);
    const { text, starts, prefix } = this.units;
    const first = lastAtMost(starts, p) + 1;
    if (first >= starts.length || starts[first]! >= q) return this.cache.count(pre + text.slice(p, q));
    const last = lastAtMost(starts, q - 1);
    return (
      this.cache.count(pre + text.slice(p, starts[first])) + (prefix[last]! - prefix[first]!) + this.cache.count(text.slice(starts[last], q))
    );
  }

  /**
   * What the cuts for length change, for a text with unsafe spaces (and no long runs, so pieces
   * start only at those cuts): walks the pieces of the assembled text with chunk `k` kept and, for
   * each cut at a space after whitespace, counts its unit in parts instead of whole.
   */
  private correction(k: number, head: boolean, tail: boolean): number {
    const runs = this.runsWith(k);
    const cuts: { run: number; at: number }[] = [];
    const layout = new Layout(this.units, runs, head, tail);
    for (let c = layout.nextSpace(MAX_PIECE); c; c = layout.nextSpace(c.s + MAX_PIECE)) {
      if (c.unsafe) cuts.push({ run: c.run, at: c.at });
    }
    let correction = 0;
    for (let i = 0; i < cuts.length; ) {
      const { run, at } = cuts[i]!;
      const unit = this.unitAround(runs[run]!, at);
      const offsets: number[] = [];
      for (; i < cuts.length && cuts[i]!.run === run && cuts[i]!.at < unit.end; i++) offsets.push(unit.offset + cuts[i]!.at - unit.from);
      let parts = 0;
      offsets.forEach((offset, j) => (parts += this.cache.count(unit.text.slice(j === 0 ? 0 : offsets[j - 1], offset))));
      parts += this.cache.count(unit.text.slice(offsets[offsets.length - 1]));
      correction += parts - this.cache.count(unit.text);
    }
    return correction;
  }

  /** The runs of the assembled text with chunk `k` kept too, in order. */
  private runsWith(k: number): Run[] {
    const runs: Run[] = [];
    const n = this.kept.length;
    for (let a = 0; a < n; a++) {
      if (this.kept[a] === 0 && a !== k) continue;
      let b = a;
      while (b + 1 < n && (this.kept[b + 1] === 1 || b + 1 === k)) b++;
      runs.push(this.run(a, b));
      a = b;
    }
    return runs;
  }

  /** The unit of the assembled text around position `at` (of the item's text) in `run`, as text. */
  private unitAround(run: Run, at: number): { text: string; from: number; end: number; offset: number } {
    const { text, starts } = this.units;
    const j = lastAtMost(starts, at);
    const next = starts[j + 1];
    const end = next !== undefined && next < run.q ? next : run.q;
    const start = starts[j]!;
    if (start > run.p) return { text: text.slice(start, end), from: start, end, offset: 0 };
    return { text: run.pre + text.slice(run.p, end), from: run.p, end, offset: run.pre.length };
  }
}

/** A space of the assembled text: where it is, and for one inside a run, its place in the item's text. */
interface Space {
  /** Position in the assembled text. */
  s: number;
  unsafe: boolean;
  run: number;
  at: number;
}

/**
 * Where the spaces of an assembled text are, without writing it: `head`, then the runs with
 * ` … ` between them, then `tail`. Asked for positions that only grow (the pieces' cuts).
 */
class Layout {
  /** Position in the assembled text of each run's start. */
  private readonly at: number[] = [];
  private j = 0;

  constructor(
    private readonly units: TextUnits,
    private readonly runs: readonly Run[],
    head: boolean,
    private readonly tail: boolean,
  ) {
    let s = head ? 2 : 0;
    for (const run of runs) {
      this.at.push(s);
      s += run.q - run.p + 3;
    }
  }

  /** The first space at or after `x`, or undefined. Marks' spaces follow a non-space, so are safe. */
  nextSpace(x: number): Space | undefined {
    const { spaces, text } = this.units;
    for (; this.j < this.runs.length; this.j++) {
      const run = this.runs[this.j]!;
      const start = this.at[this.j]!;
      const end = start + run.q - run.p;
      if (x < end) {
        const i = lastAtMost(spaces, run.p + Math.max(0, x - start) - 1) + 1;
        const sp = spaces[i];
        if (sp !== undefined && sp < run.q) return { s: start + sp - run.p, unsafe: isWhitespace(text.charCodeAt(sp - 1)), run: this.j, at: sp };
      }
      const last = this.j === this.runs.length - 1;
      if (last && !this.tail) return undefined;
      if (x <= end) return { s: end, unsafe: false, run: -1, at: -1 };
      if (!last && x <= end + 2) return { s: end + 2, unsafe: false, run: -1, at: -1 };
    }
    return undefined;
  }
}
