import { StoreUnavailableError } from '../errors.js';
import type { Snapshot, SnapshotStore } from './snapshotStore.js';

/** Snapshots held in memory, deep copied in and out so a caller's later mutation cannot leak in. */
export class MemorySnapshotStore implements SnapshotStore {
  private readonly snapshots = new Map<string, Snapshot>();
  private closed = false;

  /** The stream's latest saved snapshot, or undefined. */
  async load(streamId: string): Promise<Snapshot | undefined> {
    this.assertOpen();
    const snapshot = this.snapshots.get(streamId);
    return snapshot && structuredClone(snapshot);
  }

  /** Replaces the stream's snapshot. */
  async save(snapshot: Snapshot): Promise<void> {
    this.assertOpen();
    this.snapshots.set(snapshot.streamId, structuredClone(snapshot));
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreUnavailableError('memory snapshot store is closed');
  }
}
