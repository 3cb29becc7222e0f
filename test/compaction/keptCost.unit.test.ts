import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chunkText } from '../../src/compaction/chunker.js';
import { KeptCost } from '../../src/compaction/keptCost.js';
import { Plan } from '../../src/compaction/plan.js';
import { UnitCache } from '../../src/compaction/textUnits.js';
import { bpeTokenCounter } from '../../src/compaction/tokenCounter.js';
import { trickyText, type TextShape } from './textArbitraries.js';

/** Keeps the chunks of one item's text in the given order, checking every count against the tokenizer's. */
function keepInOrder(text: string, chunkTokens: number, seed: number, keep: readonly boolean[]): { exact: number; direct: number } {
  const plan = new Plan([{ id: 'i', slot: 'input', text, pinned: false }]);
  plan.chunks[0] = chunkText(text, bpeTokenCounter, chunkTokens);
  const order = shuffled(plan.chunks[0].length, seed);
  const cost = new KeptCost(new UnitCache().units(text), plan.chunks[0], bpeTokenCounter.count(text), new UnitCache());
  const kept = plan.kept[0]!;
  let exact = 0;
  let direct = 0;
  order.forEach((k, n) => {
    const counted = cost.costWith(k);
    kept.add(k);
    const expected = bpeTokenCounter.count(plan.assemble(0));
    if (counted === undefined) direct++;
    else {
      exact++;
      expect(counted).toBe(expected);
    }
    // Some chunks are not kept after all (fill's recount found no room): the count must not move.
    if (keep[n % keep.length] || counted === undefined) cost.add(k);
    else kept.delete(k);
  });
  return { exact, direct };
}

/** 0..n-1 in an order given by `seed` (Fisher–Yates with a small LCG). */
function shuffled(n: number, seed: number): number[] {
  const order = Array.from({ length: n }, (_, k) => k);
  let x = seed || 1;
  for (let i = n - 1; i > 0; i--) {
    x = (x * 48_271) % 2_147_483_647;
    const j = x % (i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

describe('KeptCost', () => {
  it.each<[string, TextShape]>([
    ['spaces after whitespace (pieces walked)', { unsafeSpaces: true, longRuns: false }],
    ['long runs without whitespace', { unsafeSpaces: false, longRuns: true }],
    ['anything (some counted directly)', {}],
  ])('counts the assembled text of kept chunks exactly as bpeTokenCounter does, in any order: %s', (_, shape) => {
    let exact = 0;
    fc.assert(
      fc.property(
        trickyText(400, shape),
        fc.integer({ min: 1, max: 80 }),
        fc.nat(),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 7 }),
        (text, chunkTokens, seed, keep) => {
          exact += keepInOrder(text, chunkTokens, seed, keep).exact;
        },
      ),
      { numRuns: 60 },
    );
    if (shape.unsafeSpaces === false || shape.longRuns === false) expect(exact).toBeGreaterThan(300); // counted incrementally
    // Exact BPE counts of thousands of texts: ~10 s alone, several times that beside the other suites on 2 cores.
  }, 120_000);

  it('follows prose with indented lines and cuts for length (texts of 20–60 KB)', () => {
    const line = (n: number) => `Step ${n}: check the hotel in Paris, then  book the train.\n  - note ${n}\t(see the ticket)`;
    for (const lines of [300, 900]) {
      const text = Array.from({ length: lines }, (_, n) => line(n)).join('\n');
      const { exact, direct } = keepInOrder(text, 64, lines, [true, true, false]);
      expect(direct).toBe(0);
      expect(exact).toBeGreaterThan(100);
    }
  });

  it('counts texts with runs of whitespace longer than 2,048 (cut for length) as the tokenizer counter does', () => {
    const prose = 'Step one: check the hotel in Paris, then book the train. ';
    for (const gap of ['\n'.repeat(5_000), '\t'.repeat(3_000), ' \n'.repeat(2_500)]) {
      const text = `${prose.repeat(40)}${gap}${prose.repeat(40)}`;
      const { exact, direct } = keepInOrder(text, 64, 7, [true, true, false]);
      expect(exact + direct).toBeGreaterThan(10);
    }
  });

  it('corrects the count where a cut for length falls inside indentation (a space after a tab)', () => {
    // Words apart by tabs, lines indented by a tab and three spaces: the only spaces there are,
    // so every cut for length falls inside an indentation, where it changes the count.
    const line = (n: number) => `\t   check\tthe\thotel\t${n}\tin\tParis.\tThen\tbook\tthe\ttrain.`;
    const text = Array.from({ length: 400 }, (_, n) => line(n)).join('\n');
    const units = new UnitCache().units(text);
    expect(units.prefix[units.starts.length]).not.toBe(bpeTokenCounter.count(text)); // cuts change the sum
    for (const seed of [1, 2, 3]) {
      const { exact, direct } = keepInOrder(text, 48, seed, [true, true, true, false]);
      expect(direct).toBe(0);
      expect(exact).toBeGreaterThan(100);
    }
  });

  it('leaves an item with whitespace-only chunks to be counted directly', () => {
    const text = `${'word '.repeat(40)}${' '.repeat(600)}${'more '.repeat(40)}`;
    const chunks = chunkText(text, bpeTokenCounter, 4);
    expect(chunks.some((chunk) => chunk.text.trim() === '')).toBe(true);
    const cost = new KeptCost(new UnitCache().units(text), chunks, bpeTokenCounter.count(text), new UnitCache());
    expect(cost.costWith(0)).toBeUndefined();
  });
});
