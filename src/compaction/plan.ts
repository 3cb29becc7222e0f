import type { ContextItem } from '../protocol/domain.js';
import type { Chunk } from './chunker.js';

/** Marks where folded text was cut out of a kept item or a digest line. */
export const ELISION = '…';

/** Pinned and system items are kept whole whenever they fit, and never chunked. */
export const isPinned = (item: ContextItem): boolean => item.pinned || item.slot === 'system';

/** Per-call working state; nothing survives between calls, which keeps the compactor pure. */
export class Plan {
  /** Items kept in full (pinned ones that fit, and empty ones). */
  readonly whole: boolean[];
  readonly chunks: Chunk[][];
  /** Indices into `chunks[i]` of the chunks kept so far. */
  readonly kept: Set<number>[];
  /** The assembled text of a partially or fully kept chunked item; undefined if none of it is kept. */
  readonly text: (string | undefined)[];
  /** Exact token count of `text[i]`. */
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
