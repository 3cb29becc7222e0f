export {
  DEFAULT_STREAM_NAME,
  DEFAULT_SUBJECT_PREFIX,
  MIN_DUPLICATE_WINDOW_MS,
  ensureStream,
  resolveStreamOptions,
  subjects,
  type ExecKind,
  type JetplanStreamOptions,
  type ResolvedStreamOptions,
  type Subjects,
} from './streamConfig.js';
export { HEADER_CAUSATION_ID, HEADER_CORRELATION_ID, HEADER_EVENT_TYPE, JetplanHeaders } from './headers.js';
export {
  JetStreamEventStore,
  type JetStreamEventStoreOptions,
  type JetStreamEventStoreStats,
} from './jetStreamEventStore.js';
export { DEFAULT_SNAPSHOT_BUCKET, KvSnapshotStore, type KvSnapshotStoreOptions } from './kvSnapshotStore.js';
export { PubAckMux, type PublishOptions } from './pubAckMux.js';
