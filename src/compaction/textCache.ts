/**
 * A cache of values derived from texts, bounded by the texts' total length: entries go in a
 * young generation; when it holds half the limit it becomes the old one, and the old one is
 * dropped. A hit in the young generation costs one lookup (an LRU pays a delete and an insert per
 * hit, which showed in profiles at ~30,000 lookups per compaction); an old entry used again moves
 * to the young one, so what is in use stays. For pure derivations only: what it holds changes
 * no result, only its cost. With `copyKeys`, keys are stored as copies: a slice of a long text (a
 * chunk of an item) would otherwise keep the whole text alive, beyond the bound. Without, a lookup
 * with the very string that was stored is cheaper (no comparison of characters).
 */
export class TextCache<V> {
  private young = new Map<string, V>();
  private old = new Map<string, V>();
  private youngChars = 0;

  constructor(
    private readonly maxChars: number,
    private readonly copyKeys = true,
  ) {}

  /** The value for `text`, derived by `derive` if it is not cached. */
  get(text: string, derive: (text: string) => V): V {
    const known = this.young.get(text);
    if (known !== undefined) return known;
    const old = this.old.get(text);
    const value = old !== undefined ? old : derive(text);
    if (text.length <= this.maxChars / 2) this.add(text, value);
    return value;
  }

  /** Forgets everything. */
  clear(): void {
    this.young = new Map();
    this.old = new Map();
    this.youngChars = 0;
  }

  private add(text: string, value: V): void {
    if (this.youngChars + text.length > this.maxChars / 2) {
      this.old = this.young;
      this.young = new Map();
      this.youngChars = 0;
    }
    // Slices shorter than 13 characters are copies already.
    this.young.set(this.copyKeys && text.length >= 13 ? ` ${text}`.slice(1) : text, value);
    this.youngChars += text.length;
  }
}
