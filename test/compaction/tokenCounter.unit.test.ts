import fc from 'fast-check';
import { countTokens } from 'gpt-tokenizer/encoding/cl100k_base';
import { describe, expect, it } from 'vitest';
import { bpeTokenCounter } from '../../src/compaction/tokenCounter.js';

const exact = (text: string) => countTokens(text, { disallowedSpecial: new Set<string>() });

describe('bpeTokenCounter', () => {
  it('counts ordinary text, long or short, exactly as the tokenizer does', () => {
    const prose = 'The quick brown fox jumps over the lazy dog; it said "hello" twice.\n';
    for (const text of ['', 'hi', prose, prose.repeat(200), `<|endoftext|> ${prose.repeat(50)}`]) {
      expect(bpeTokenCounter.count(text)).toBe(exact(text));
    }
    fc.assert(
      fc.property(fc.array(fc.stringMatching(/^[a-z]{1,12}$/), { maxLength: 1_500 }), (words) => {
        const text = words.join(' ');
        expect(bpeTokenCounter.count(text)).toBe(exact(text));
      }),
      { numRuns: 30 },
    );
  });

  it('counts a long run without whitespace in pieces of 256 characters (whole, it costs seconds)', () => {
    const run = '='.repeat(60_000);
    let pieces = 0;
    for (let i = 0; i < run.length; i += 256) pieces += exact(run.slice(i, i + 256));
    expect(bpeTokenCounter.count(run)).toBe(pieces);
    // Never inside a surrogate pair: 300 emoji count as 300 emoji.
    expect(bpeTokenCounter.count('😀'.repeat(300))).toBe(exact('😀'.repeat(300)));
  });
});
