const WORD = /[\p{L}\p{M}\p{N}]+(?:['’_-][\p{L}\p{M}\p{N}]+)*/gu;
// Scripts written without spaces: a "word" there is a whole phrase, so we compare character bigrams.
const UNSPACED = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Thai}\p{Script=Lao}\p{Script=Khmer}\p{Script=Myanmar}]/u;
const STOPWORDS = new Set(
  'a an and are as at be by for from has have in is it its of on or that the this to was were will with'.split(' '),
);

/** Lower-cased, NFKC-normalised content words of `text` (character bigrams for unspaced scripts). */
export function termsOf(text: string): Set<string> {
  const terms = new Set<string>();
  for (const [word] of text.normalize('NFKC').toLowerCase().matchAll(WORD)) {
    if (!UNSPACED.test(word)) {
      if (!STOPWORDS.has(word)) terms.add(word);
      continue;
    }
    const points = Array.from(word);
    if (points.length === 1) terms.add(word);
    for (let k = 0; k + 1 < points.length; k++) terms.add(`${points[k]}${points[k + 1]}`);
  }
  return terms;
}

/**
 * Best share of any one task's terms found in the chunk, in [0, 1]. Containment rather than Jaccard:
 * Jaccard shrinks with chunk vocabulary, making it tiny and incomparable with the recency term.
 */
export function relevance(chunk: ReadonlySet<string>, tasks: readonly ReadonlySet<string>[]): number {
  let best = 0;
  for (const task of tasks) {
    let shared = 0;
    for (const term of task) if (chunk.has(term)) shared++;
    best = Math.max(best, shared / task.size);
  }
  return best;
}
