/**
 * The public API: what a library user names in their own code. The type imports fail the
 * typecheck (npm test runs it) if a type that public signatures use is not exported.
 */
import { describe, expect, it } from 'vitest';
import * as jetplan from '../src/index.js';
import type {
  BusExecutorOptions,
  CommitListener,
  FileEventStoreOptions,
  JetStreamEventStoreOptions,
  KvExecutorInboxOptions,
  KvSnapshotStoreOptions,
  PendingCommand,
  Published,
  PublishOptions,
  RecoveryResult,
  SessionPhase,
  SessionRepositoryOptions,
  SessionStatus,
  Timers,
  WatchOptions,
  Backoff,
  RelevanceCompactorOptions,
  PlanTextOptions,
  JetplanStreamOptions,
  ResolvedStreamOptions,
  FileEventStoreStats,
  JetStreamEventStoreStats,
  OutboxRelayOptions,
  CommitSource,
  SessionActor,
  BusHandler,
  LastInput,
  SessionContext,
  TaskContext,
  IdMap,
  IndexedEventStore,
  PurgeOptions,
  PurgeResult,
  DataDirPurgeOptions,
  DataDirPurgeResult,
} from '../src/index.js';

/** Every type above, so that none is an unused import. */
export type PublicTypes = [
  BusExecutorOptions, CommitListener, FileEventStoreOptions, JetStreamEventStoreOptions, KvExecutorInboxOptions,
  KvSnapshotStoreOptions, PendingCommand, Published, PublishOptions, RecoveryResult, SessionPhase,
  SessionRepositoryOptions, SessionStatus, Timers, WatchOptions,
  // Named by public signatures (found missing by a black-box user's checker over index.d.ts).
  Backoff, RelevanceCompactorOptions, PlanTextOptions, JetplanStreamOptions, ResolvedStreamOptions,
  FileEventStoreStats, JetStreamEventStoreStats, OutboxRelayOptions, CommitSource, SessionActor,
  BusHandler, LastInput, SessionContext, TaskContext, IdMap<string>, IndexedEventStore, PurgeOptions, PurgeResult,
  DataDirPurgeOptions, DataDirPurgeResult,
];

describe('public API', () => {
  it('exports every error class with its guard', () => {
    const pairs: [new (message: string) => Error, (e: unknown) => boolean][] = [
      [jetplan.ValidationError, jetplan.isValidationError],
      [jetplan.CorruptLogError, jetplan.isCorruptLogError],
      [jetplan.StoreUnavailableError, jetplan.isStoreUnavailableError],
      [jetplan.ShellConfigError, jetplan.isShellConfigError],
      [jetplan.UnsupportedMachineError, jetplan.isUnsupportedMachineError],
      [jetplan.NatsConnectError, jetplan.isNatsConnectError],
      [jetplan.ExecutorStoppedError, jetplan.isExecutorStoppedError],
    ];
    for (const [ErrorClass, guard] of pairs) {
      const error = new ErrorClass('x');
      expect(guard(error)).toBe(true);
      expect(guard(new Error('x'))).toBe(false);
      expect(error.name).toBe(ErrorClass.name);
    }
  });

  it('exports what a runtime, a service and an executor are built from', () => {
    for (const name of ['createEmbeddedRuntime', 'startPlannerService', 'createExecutor', 'createClient', 'purgeEndedSessions', 'purgeDataDir', 'startBusExecutor', 'ExecutorStoppedError', 'KvExecutorInbox', 'Metrics', 'silentLogger', 'realTimers']) {
      expect(jetplan, name).toHaveProperty(name);
    }
  });
});
