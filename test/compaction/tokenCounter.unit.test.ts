import fc from 'fast-check';
import { countTokens } from 'gpt-tokenizer/encoding/cl100k_base';
import { describe, expect, it } from 'vitest';
import { bpeTokenCounter, isWhitespace } from '../../src/compaction/tokenCounter.js';
import { trickyText } from './textArbitraries.js';

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

  it('counts a long run of whitespace in pieces of 2,048 characters (32,000 tabs whole: seconds)', () => {
    for (const ch of ['\t', '\n', '\r\n', ' \n']) {
      const text = `word${ch.repeat(Math.ceil(40_000 / ch.length))}word`;
      expect(bpeTokenCounter.count(text), JSON.stringify(ch)).toBe(piecewise(text));
    }
    // 200,000 tabs (a context of pasted output): whole, a minute of BPE; in pieces, well under a second.
    const tabs = '\t'.repeat(200_000);
    expect(bpeTokenCounter.count(tabs)).toBe(piecewise(tabs));
    // A run of 2,048 is counted whole, as the tokenizer does.
    expect(bpeTokenCounter.count(`a${'\n'.repeat(2_048)}b`)).toBe(exact(`a${'\n'.repeat(2_048)}b`));
  });
});

describe('bpeTokenCounter by units', () => {
  it('gives the tokenizer’s count for every text: the sum of units equals the count of each piece', () => {
    // Below 2,048 characters (no cut for length) and without runs of 256, the count is the
    // tokenizer's own; the unit sum must agree with it, whatever the whitespace.
    fc.assert(
      fc.property(trickyText(120), (text) => {
        const run = text.split(/[ \t\n\r]/).reduce((n, part) => Math.max(n, part.length), 0);
        if (text.length < 2_048 && run <= 256) expect(bpeTokenCounter.count(text)).toBe(exact(text));
        expect(bpeTokenCounter.count(text)).toBe(piecewise(text));
      }),
      { numRuns: 300 },
    );
  });

  it('counts a long text with unsafe spaces and long runs as its pieces, each by the tokenizer', () => {
    fc.assert(
      fc.property(trickyText(900), (text) => {
        expect(bpeTokenCounter.count(text)).toBe(piecewise(text));
      }),
      { numRuns: 40 },
    );
  });

  it('treats as whitespace exactly what the tokenizer’s \\s and String.prototype.trim do', () => {
    for (let code = 0; code < 0x10000; code++) {
      const char = String.fromCharCode(code);
      expect(isWhitespace(code), `U+${code.toString(16)}`).toBe(/\s/u.test(char));
      expect(isWhitespace(code)).toBe(char.trim() === '');
    }
  });
});

/**
 * The counter's definition, independently: cut before a space once a piece is 2,048 long and
 * inside runs of 256 characters without whitespace, and count each piece with the tokenizer.
 */
function piecewise(text: string): number {
  let total = 0;
  let start = 0;
  let run = 0;
  let blank = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 32 || code === 9 || code === 10 || code === 13) {
      run = 0;
      if ((i - start >= 2_048 && code === 32) || ++blank > 2_048) [total, start, blank] = [total + exact(text.slice(start, i)), i, 1];
    } else {
      blank = 0;
      if (++run > 256 && !(code >= 0xdc00 && code <= 0xdfff)) [total, start, run] = [total + exact(text.slice(start, i)), i, 1];
    }
  }
  return total + exact(text.slice(start));
}
