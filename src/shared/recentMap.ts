/**
 * A Map that forgets its least recently set entry beyond `limit`: a bounded cache of hints (each
 * `set` makes its key the most recent; reads do not count).
 */
export class RecentMap<K, V> extends Map<K, V> {
  constructor(private readonly limit: number) {
    super();
  }

  override set(key: K, value: V): this {
    this.delete(key); // re-inserted at the end: insertion order is recency
    super.set(key, value);
    if (this.size > this.limit) this.delete(this.keys().next().value as K);
    return this;
  }
}
