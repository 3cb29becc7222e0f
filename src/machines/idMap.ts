/** Two levels of 32 slots: 1,024 buckets; an update copies one slot array per level and a bucket. */
const WIDTH = 32;

/** FNV-1a over the id's UTF-16 code units: cheap, and the same in every process. */
function hashOf(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

type Bucket<V> = Readonly<Record<string, V>>;
type Level<V> = ReadonlyArray<Bucket<V> | undefined>;
type Root<V> = ReadonlyArray<Level<V> | undefined>;

const emptySlots = <T>(): (T | undefined)[] => new Array<T | undefined>(WIDTH).fill(undefined);

/**
 * An immutable map by id (a two-level trie of 32-slot arrays over 1,024 buckets) whose update
 * copies two small arrays and one bucket, not every entry. It holds a machine's spawned children
 * and the session's plan: a session holds one child per task and every task event replaces one;
 * with a plain object copied per event, a session of 3,400 tasks spent ~1 ms per event copying. Serializes (`toJSON`) as a plain
 * record in a fixed order (trie, then insertion), so a state restored with {@link IdMap.from}
 * serializes byte for byte alike.
 */
export class IdMap<V> {
  private constructor(
    private readonly root: Root<V>,
    /** How many children there are. */
    readonly size: number,
  ) {}

  /** The empty map: one shared instance, since none is ever modified (most children have none). */
  static empty<V>(): IdMap<V> {
    return IdMap.#empty as IdMap<V>;
  }

  static readonly #empty = new IdMap<unknown>(emptySlots(), 0);

  /** From a plain record (a deserialized state), entries added in the record's order. */
  static from<V>(record: Record<string, V>): IdMap<V> {
    return IdMap.empty<V>().setAll(Object.entries(record));
  }

  get(id: string): V | undefined {
    const h = hashOf(id);
    const bucket = this.root[h % WIDTH]?.[(h >>> 5) % WIDTH];
    return bucket !== undefined && Object.hasOwn(bucket, id) ? bucket[id] : undefined;
  }

  /** A map with `id` set to `value`; this one is unchanged. */
  set(id: string, value: V): IdMap<V> {
    const h = hashOf(id);
    const i = h % WIDTH;
    const j = (h >>> 5) % WIDTH;
    const level = this.root[i];
    const bucket = level?.[j];
    const added = bucket === undefined || !Object.hasOwn(bucket, id);
    const nextLevel = level ? level.slice() : emptySlots<Bucket<V>>();
    nextLevel[j] = { ...bucket, [id]: value };
    const root = this.root.slice();
    root[i] = nextLevel;
    return new IdMap(root, added ? this.size + 1 : this.size);
  }

  /**
   * A map with every entry set, in order (a later entry for an id wins); this one is unchanged.
   * Copies each touched slot array and bucket once, where `set` per entry would copy them per entry.
   */
  setAll(entries: Iterable<readonly [string, V]>): IdMap<V> {
    const root = this.root.slice();
    const copied = new Uint8Array(WIDTH + WIDTH * WIDTH); // levels (i), buckets (WIDTH + i * WIDTH + j)
    let size = this.size;
    for (const [id, value] of entries) {
      const h = hashOf(id);
      const i = h % WIDTH;
      const j = (h >>> 5) % WIDTH;
      if (copied[i] === 0) {
        root[i] = root[i] ? root[i].slice() : emptySlots<Bucket<V>>();
        copied[i] = 1;
      }
      const level = root[i] as (Bucket<V> | undefined)[];
      const b = WIDTH + i * WIDTH + j;
      if (copied[b] === 0) {
        level[j] = { ...level[j] };
        copied[b] = 1;
      }
      const bucket = level[j] as Record<string, V>;
      if (!Object.hasOwn(bucket, id)) size++;
      // `bucket.__proto__ = value` would set the prototype: that id must become an own entry too.
      if (id === '__proto__') Object.defineProperty(bucket, id, { value, enumerable: true, writable: true, configurable: true });
      else bucket[id] = value;
    }
    return new IdMap(root, size);
  }

  *entries(): IterableIterator<[string, V]> {
    for (const level of this.root) {
      if (!level) continue;
      for (const bucket of level) if (bucket) yield* Object.entries(bucket);
    }
  }

  keys(): string[] {
    return [...this.entries()].map(([id]) => id);
  }

  toJSON(): Record<string, V> {
    return Object.fromEntries(this.entries());
  }
}
