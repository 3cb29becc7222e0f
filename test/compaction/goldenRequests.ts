import type { CompactionRequest } from '../../src/compaction/index.js';
import type { ContextItem } from '../../src/protocol/domain.js';

/**
 * Compaction requests made by a seeded generator, whose results by the compactor as it was before
 * its counting and relevance were made incremental are pinned by hash in
 * `relevanceCompactor.golden.unit.test.ts`: the same requests must still give the same results.
 * Shapes that matter: items of tens of KB (cuts for length), indentation and double spaces
 * (unsafe spaces), runs without whitespace, pinned answers, an old summary, hundreds of open tasks
 * sharing words with the chunks, several compactions through one compactor (its caches).
 */
export function goldenRequests(): CompactionRequest[] {
  const rand = lcg(20261126);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const words = Array.from({ length: 600 }, (_, i) => `w${(i * 7_919).toString(36)}`).concat(['hotel', 'Paris', 'train', 'the', 'a', 'of', 'café', '東京', '🙂']);
  const word = () => words[Math.floor(words.length * rand() ** 2)]!;
  const sentence = () => `${Array.from({ length: 4 + Math.floor(rand() * 14) }, word).join(rand() < 0.1 ? '  ' : ' ')}${pick(['.', '!', '?', '…'])}`;
  const text = (sentences: number) =>
    Array.from({ length: sentences }, () => {
      const r = rand();
      if (r < 0.05) return `\n\t   ${sentence()}`;
      if (r < 0.08) return `\n  - ${sentence()}`;
      if (r < 0.1) return ` ${'=x'.repeat(150 + Math.floor(rand() * 200))} `;
      if (r < 0.15) return `\n\n${sentence()}`;
      return ` ${sentence()}`;
    }).join('');
  const requests: CompactionRequest[] = [];
  for (let n = 0; n < 12; n++) {
    const items: ContextItem[] = [{ id: 'system', slot: 'system', text: 'You are jetplan, a careful planner.', pinned: true }];
    if (n % 3 === 2) items.push({ id: 'summary', slot: 'summary', text: `Summary of folded context:\n- input-1: ${sentence()}\n- result-2: ${sentence()}`, pinned: false });
    const count = 3 + Math.floor(rand() * 10);
    for (let i = 0; i < count; i++) {
      const r = rand();
      const slot = r < 0.35 ? 'input' : r < 0.9 ? 'result' : 'answer';
      const size = slot === 'input' ? 50 + Math.floor(rand() * (n % 4 === 0 ? 2_000 : 300)) : 1 + Math.floor(rand() * 30);
      items.push({ id: `${slot}-${n}-${i}`, slot, text: slot === 'answer' ? `Q: ${sentence()}\nA: ${sentence()}` : text(size), pinned: slot === 'answer' });
    }
    const openTasks = Array.from({ length: Math.floor(rand() * (n % 2 === 0 ? 600 : 40)) }, sentence);
    const tokens = items.reduce((sum, item) => sum + item.text.length / 4, 0);
    requests.push({ items, openTasks, budget: Math.floor(tokens * (0.2 + rand() * 0.6)), ...(n % 5 === 0 ? { pinnedBudget: Math.floor(tokens) } : {}) });
  }
  return requests;
}

function lcg(seed: number): () => number {
  let x = seed;
  return () => (x = (x * 48_271) % 2_147_483_647) / 2_147_483_647;
}
