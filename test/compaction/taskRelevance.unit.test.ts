import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { relevance, termsOf } from '../../src/compaction/relevance.js';
import { TaskRelevance } from '../../src/compaction/taskRelevance.js';
import { TermCache } from '../../src/compaction/termCache.js';

// A small vocabulary, so that tasks and chunks share many words, as a session's do.
const WORDS = ['hotel', 'paris', 'louvre', 'train', 'ticket', 'budget', 'weather', 'stock', 'book', 'check', 'the', 'a', '東京', 'café', 'data', 'file', 'x1', 'x2', 'x3'];
const sentence = (max: number) => fc.array(fc.constantFrom(...WORDS), { maxLength: max }).map((words) => words.join(' '));

/** The definition: the best share of one open task's terms found in the chunk. */
const naive = (chunk: string, openTasks: readonly string[]) => relevance(termsOf(chunk), openTasks.map(termsOf).filter((terms) => terms.size > 0));

describe('TaskRelevance', () => {
  it('scores every chunk as comparing it with every open task does, compaction after compaction', () => {
    // Each step: the open tasks lose some at the front (completed), gain some at the end (a new
    // input, sometimes a description seen and completed before), and the chunks partly change.
    const step = fc.record({ done: fc.nat({ max: 12 }), added: fc.array(sentence(8), { maxLength: 15 }), reopen: fc.boolean(), chunks: fc.array(sentence(14), { maxLength: 12 }) });
    fc.assert(
      fc.property(fc.array(sentence(8), { maxLength: 40 }), fc.array(step, { minLength: 1, maxLength: 8 }), (first, steps) => {
        const scorer = new TaskRelevance(new TermCache());
        let open = first;
        let chunks: string[] = [];
        const closed: string[] = [];
        for (const { done, added, reopen, chunks: fresh } of steps) {
          closed.push(...open.slice(0, done));
          open = [...open.slice(done), ...added, ...(reopen && closed.length > 0 ? [closed[0]!] : [])];
          chunks = [...chunks.slice(fresh.length >> 1), ...fresh];
          const score = scorer.forOpenTasks(open);
          for (const chunk of chunks) expect(score(chunk)).toBe(naive(chunk, open));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('scores exactly with thousands of open tasks, where the index prunes', () => {
    fc.assert(
      fc.property(fc.array(sentence(12), { minLength: 500, maxLength: 2_000 }), fc.array(sentence(30), { maxLength: 30 }), (open, chunks) => {
        const score = new TaskRelevance(new TermCache()).forOpenTasks(open);
        for (const chunk of chunks) expect(score(chunk)).toBe(naive(chunk, open));
      }),
      { numRuns: 20 },
    );
  });

  it('starts afresh when the term cache does, keeping scores exact', () => {
    const terms = new TermCache({ maxTerms: 3 });
    const scorer = new TaskRelevance(terms);
    const open = ['book the hotel', 'check the train ticket', 'paris weather'];
    for (const chunk of ['hotel in paris', 'train ticket budget', 'weather']) {
      terms.startCompaction(); // over three terms: ids start again
      expect(scorer.forOpenTasks(open)(chunk)).toBe(naive(chunk, open));
    }
  });
});
