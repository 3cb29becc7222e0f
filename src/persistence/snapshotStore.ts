/**
 * A snapshot of a session's folded state at a stream version. Snapshots are a cache: the log is
 * the truth, and a snapshot written at an older schema (`schema`) is ignored and rebuilt.
 */
export interface Snapshot {
  streamId: string;
  version: number;
  schema: number;
  state: unknown;
  /**
   * The id of the event at `version`. A load uses the snapshot only while the log's event at
   * `version` has this id: a session id reused after its log was purged must not start from the
   * old session's state once the new log is as long. Snapshots saved before it was recorded have
   * none and are checked by version alone.
   */
  lastEventId?: string;
}

/** Where snapshots live: a file per session on the embedded store, a KV bucket on JetStream. */
export interface SnapshotStore {
  load(streamId: string): Promise<Snapshot | undefined>;
  save(snapshot: Snapshot): Promise<void>;
  close?(): Promise<void>;
}
