import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { bpeTokenCounter, createMemoTokenCounter, createRelevanceCompactor, type CompactionResult } from '../../src/compaction/index.js';
import { goldenRequests } from './goldenRequests.js';

/**
 * Results of the compactor before its counts and relevance scores were computed incrementally
 * (commit of 2026-11-26, before the large-session fix), by hash of their JSON: stored
 * `ContextCompacted` events are never recomputed, but a decision is (a retried or cut-short one),
 * and the same context must compact the same way whichever version decides.
 */
const BEFORE = [
  '1b08fa405ef3f158', '2b5c5c1839363747', 'ab874558b2c41518', 'a71f8fca139c1ef7', 'adc4cede6f644929', 'c09396d952abd530',
  'ef6fb57da3765a06', '5e3906b432f94e0f', '28f9234b8ae3ca15', 'ac2681ab686ebcc2', 'cd9f2d62e5afd081', '935739b3fc1a9303',
];

const hash = (result: CompactionResult) => createHash('sha256').update(JSON.stringify(result)).digest('hex').slice(0, 16);

describe('relevance compactor, against its results before the large-session fix', () => {
  it('gives the same results, one compactor for all requests (its caches carried over)', () => {
    const compactor = createRelevanceCompactor({ counter: createMemoTokenCounter(bpeTokenCounter) });
    expect(goldenRequests().map((request) => hash(compactor.compact(request)))).toEqual(BEFORE);
  });

  it('gives the same results with a counter it cannot count incrementally (every text counted)', () => {
    const counter = { count: (text: string) => bpeTokenCounter.count(text) };
    expect(goldenRequests().map((request) => hash(createRelevanceCompactor({ counter }).compact(request)))).toEqual(BEFORE);
  });
});
