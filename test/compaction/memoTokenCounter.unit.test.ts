import { describe, expect, it } from 'vitest';
import { createMemoTokenCounter } from '../../src/compaction/memoTokenCounter.js';
import { bpeTokenCounter } from '../../src/compaction/tokenCounter.js';

/** A counter that records what it was asked, so that what the memo kept shows. */
function asking() {
  const asked: string[] = [];
  return { asked, counter: { count: (t: string) => (asked.push(t), bpeTokenCounter.count(t)) } };
}

describe('createMemoTokenCounter', () => {
  it('counts like the counter it wraps and asks it once per recent text', () => {
    const { asked, counter } = asking();
    const memo = createMemoTokenCounter(counter, 2);
    expect(memo.count('hello world')).toBe(bpeTokenCounter.count('hello world'));
    expect(memo.count('hello world')).toBe(2);
    expect(asked).toEqual(['hello world']);
    memo.count('a');
    memo.count('b'); // evicts 'hello world', the least recently used
    memo.count('hello world');
    expect(asked).toEqual(['hello world', 'a', 'b', 'hello world']);
  });

  it('forgets the least recently used first: a text counted again stays', () => {
    const { asked, counter } = asking();
    const memo = createMemoTokenCounter(counter, { maxEntries: 2 });
    memo.count('a');
    memo.count('b');
    memo.count('a'); // used again: 'b' is now the least recent
    memo.count('c'); // evicts 'b'
    memo.count('a');
    memo.count('b');
    expect(asked).toEqual(['a', 'b', 'c', 'b']);
  });

  it('keeps at most maxChars of text: large texts push out older ones, and one over the limit is not kept', () => {
    const { asked, counter } = asking();
    const memo = createMemoTokenCounter(counter, { maxChars: 10 });
    const six = 'x'.repeat(6);
    const four = 'y'.repeat(4);
    memo.count(six);
    memo.count(four); // 10 characters in all: both kept
    memo.count(six);
    memo.count(four);
    expect(asked).toEqual([six, four]);
    memo.count('z'); // 11 would be over: the least recent (six) goes
    memo.count(four);
    memo.count(six);
    expect(asked).toEqual([six, four, 'z', six]);
    const eleven = 'w'.repeat(11);
    expect(memo.count(eleven)).toBe(bpeTokenCounter.count(eleven));
    memo.count(eleven);
    expect(asked.filter((t) => t === eleven)).toHaveLength(2); // counted each time, never kept
  });
});
