import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { UnitCache } from '../../src/compaction/textUnits.js';
import { bpeTokenCounter } from '../../src/compaction/tokenCounter.js';
import { trickyText } from './textArbitraries.js';

describe('UnitCache', () => {
  it('counts a text as the sum of its units when no cut for length moves a count', () => {
    fc.assert(
      fc.property(trickyText(300, { unsafeSpaces: false }), (text) => {
        const units = new UnitCache().units(text);
        expect(units.prefix[units.starts.length]).toBe(bpeTokenCounter.count(text));
      }),
      { numRuns: 200 },
    );
  });

  it('counts any slice under 2,048 characters as bpeTokenCounter counts the slice', () => {
    fc.assert(
      fc.property(trickyText(600), fc.array(fc.tuple(fc.nat(), fc.nat({ max: 2_100 })), { maxLength: 20 }), (text, slices) => {
        const cache = new UnitCache();
        const units = cache.units(text);
        for (const [from, length] of slices) {
          const start = text.length === 0 ? 0 : from % text.length;
          const end = Math.min(text.length, start + length);
          const counted = cache.span(units, start, end);
          if (end - start >= 2_048) expect(counted).toBeUndefined();
          else expect(counted).toBe(bpeTokenCounter.count(text.slice(start, end)));
        }
      }),
      { numRuns: 200 },
    );
  });
});
