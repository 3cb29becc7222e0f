/**
 * A snapshot of a session's folded state at a stream version. Snapshots are a cache: the log is
 * the truth, and a snapshot written at an older schema (`schema`) is ignored and rebuilt.
 */
export interface Snapshot {
  streamId: string;
  version: number;
  schema: number;
  state: unknown;
}

/** Where snapshots live: a file per session on the embedded store, a KV bucket on JetStream. */
export interface SnapshotStore {
  load(streamId: string): Promise<Snapshot | undefined>;
  save(snapshot: Snapshot): Promise<void>;
  close?(): Promise<void>;
}
