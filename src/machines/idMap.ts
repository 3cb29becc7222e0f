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

/**
 * Entries of one bucket as [id0, value0, id1, value1, …], in insertion order. An array rather than
 * an object keyed by id: every task id is a new key, and objects with their own sets of keys each
 * get a hidden class of their own, which made updates several times slower.
 */
type Bucket<V> = ReadonlyArray<string | V>;
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
    if (bucket === undefined) return undefined;
    const k = indexIn(bucket, id);
    return k < 0 ? undefined : (bucket[k + 1] as V);
  }

  /** A map with `id` set to `value`; this one is unchanged. */
  set(id: string, value: V): IdMap<V> {
    const h = hashOf(id);
    const i = h % WIDTH;
    const j = (h >>> 5) % WIDTH;
    const level = this.root[i];
    const bucket = level?.[j];
    const nextBucket = bucket ? bucket.slice() : [];
    const added = put(nextBucket, id, value);
    const nextLevel = level ? level.slice() : emptySlots<Bucket<V>>();
    nextLevel[j] = nextBucket;
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
        level[j] = level[j] ? level[j].slice() : [];
        copied[b] = 1;
      }
      if (put(level[j] as (string | V)[], id, value)) size++;
    }
    return new IdMap(root, size);
  }

  *entries(): IterableIterator<[string, V]> {
    for (const level of this.root) {
      if (!level) continue;
      for (const bucket of level) {
        if (!bucket) continue;
        for (let k = 0; k < bucket.length; k += 2) yield [bucket[k] as string, bucket[k + 1] as V];
      }
    }
  }

  keys(): string[] {
    return [...this.entries()].map(([id]) => id);
  }

  toJSON(): Record<string, V> {
    return Object.fromEntries(this.entries());
  }
}

/** Where `id` sits in the bucket (its id's index), or -1. */
function indexIn<V>(bucket: Bucket<V>, id: string): number {
  for (let k = 0; k < bucket.length; k += 2) if (bucket[k] === id) return k;
  return -1;
}

/** Sets `id` in a bucket being built; whether it was added rather than replaced. */
function put<V>(bucket: (string | V)[], id: string, value: V): boolean {
  const k = indexIn(bucket, id);
  if (k >= 0) {
    bucket[k + 1] = value;
    return false;
  }
  bucket.push(id, value);
  return true;
}
