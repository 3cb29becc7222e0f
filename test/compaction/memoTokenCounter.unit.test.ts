import { describe, expect, it } from 'vitest';
import { createMemoTokenCounter } from '../../src/compaction/memoTokenCounter.js';
import { bpeTokenCounter } from '../../src/compaction/tokenCounter.js';

describe('createMemoTokenCounter', () => {
  it('counts like the counter it wraps and asks it once per recent text', () => {
    const asked: string[] = [];
    const memo = createMemoTokenCounter({ count: (t) => (asked.push(t), bpeTokenCounter.count(t)) }, 2);
    expect(memo.count('hello world')).toBe(bpeTokenCounter.count('hello world'));
    expect(memo.count('hello world')).toBe(2);
    expect(asked).toEqual(['hello world']);
    memo.count('a');
    memo.count('b'); // evicts 'hello world', the oldest
    memo.count('hello world');
    expect(asked).toEqual(['hello world', 'a', 'b', 'hello world']);
  });
});
