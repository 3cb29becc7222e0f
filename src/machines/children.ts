/** How many buckets the entries are spread over; an update copies one bucket and this root. */
const BUCKETS = 64;

/** FNV-1a over the id's UTF-16 code units: cheap, and the same in every process. */
function bucketOf(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % BUCKETS;
}

type Bucket<V> = Readonly<Record<string, V>>;

/**
 * A machine's spawned children by id: an immutable map whose update copies one of 64 buckets and
 * the bucket table, not every entry. A session holds one child per task and every task event
 * replaces one; with a plain object copied per event, a session of 3,400 tasks spent ~1 ms per
 * event copying. Serializes (`toJSON`) as a plain record, in a fixed order (bucket, then
 * insertion), so a state restored with {@link Children.from} serializes byte for byte alike.
 */
export class Children<V> {
  private constructor(
    private readonly buckets: ReadonlyArray<Bucket<V> | undefined>,
    /** How many children there are. */
    readonly size: number,
  ) {}

  /** The empty map: one shared instance, since none is ever modified (most children have none). */
  static empty<V>(): Children<V> {
    return Children.#empty as Children<V>;
  }

  static readonly #empty = new Children<unknown>(new Array<Bucket<unknown> | undefined>(BUCKETS).fill(undefined), 0);

  /** From a plain record (a deserialized state), entries added in the record's order. */
  static from<V>(record: Record<string, V>): Children<V> {
    let children = Children.empty<V>();
    for (const [id, value] of Object.entries(record)) children = children.set(id, value);
    return children;
  }

  get(id: string): V | undefined {
    const bucket = this.buckets[bucketOf(id)];
    return bucket !== undefined && Object.hasOwn(bucket, id) ? bucket[id] : undefined;
  }

  /** A map with `id` set to `value`; this one is unchanged. */
  set(id: string, value: V): Children<V> {
    const b = bucketOf(id);
    const bucket = this.buckets[b];
    const added = bucket === undefined || !Object.hasOwn(bucket, id);
    const buckets = this.buckets.slice();
    buckets[b] = { ...bucket, [id]: value };
    return new Children(buckets, added ? this.size + 1 : this.size);
  }

  *entries(): IterableIterator<[string, V]> {
    for (const bucket of this.buckets) if (bucket) yield* Object.entries(bucket);
  }

  keys(): string[] {
    return [...this.entries()].map(([id]) => id);
  }

  toJSON(): Record<string, V> {
    return Object.fromEntries(this.entries());
  }
}

