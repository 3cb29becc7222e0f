import type { DomainEvent } from '../protocol/events.js';
import type { LatestEvent, LatestEvents, PendingCommand, ReadOptions, ReadResult } from './eventStore.js';
import type { StreamIndex } from './streamIndex.js';
import { checkReadOptions, checkStreamId } from './appendChecks.js';

/**
 * The reads shared by the stores that keep their streams in an in-memory {@link StreamIndex} (the
 * memory store, and the file store's index of its log). Subclasses own appends, delivery marks and
 * closing; every read checks the store is open first.
 */
export abstract class IndexedEventStore implements LatestEvents {
  protected abstract readonly index: StreamIndex;
  protected abstract assertOpen(): void;

  /** Reads a copy of the stream's events between the inclusive bounds of `options`. */
  async readStream(streamId: string, options?: ReadOptions): Promise<ReadResult> {
    this.assertOpen();
    checkStreamId(streamId);
    checkReadOptions(streamId, options);
    return this.index.read(streamId, options);
  }

  async listStreams(): Promise<string[]> {
    this.assertOpen();
    return this.index.list();
  }

  async *readAll(): AsyncIterable<DomainEvent> {
    this.assertOpen();
    for (const streamId of this.index.list()) yield* this.index.read(streamId).events;
  }

  /**
   * {@link LatestEvents}: each stream's last event, straight from the index (one event per stream,
   * nothing else read), for the streams there were at the start.
   */
  async *latestEvents(): AsyncIterable<LatestEvent> {
    this.assertOpen();
    for (const streamId of this.index.list()) {
      const [last] = this.index.read(streamId, { last: 1 }).events;
      if (last) yield { streamId, type: last.type, timestamp: last.timestamp };
    }
  }

  /** Commands not yet marked delivered, oldest append first. */
  async pendingCommands(): Promise<PendingCommand[]> {
    this.assertOpen();
    return this.index.pendingCommands();
  }
}
