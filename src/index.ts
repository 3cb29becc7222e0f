/**
 * jetplan's public API. Named exports only: what is not listed here is internal.
 */

// Protocol: schemas at the boundaries.
export { SessionId, NodeKind, TaskStatus, Attachment, PlannedTask, Task, PlannerConfig, ContextItem, Backoff } from './protocol/domain.js';
export type { PlannerState, PlannerConfigInput } from './protocol/domain.js';
export { DomainEvent, EVENT_SCHEMA_VERSION, EVENT_TYPES, RawEnvelope } from './protocol/events.js';
export type { EventType, EventOf, NewEvent } from './protocol/events.js';
export { ExecuteTask, RequestClarification, PlannerCommand } from './protocol/commands.js';
export type { OutboxCommand } from './protocol/commands.js';
export { SessionInput } from './protocol/inputs.js';
export type { InputMeta, InputType } from './protocol/inputs.js';
export { parseInput, MAX_INPUT_BYTES } from './protocol/parseInput.js';
export type { ParsedInput } from './protocol/parseInput.js';
export { upcast, decodeEvent } from './protocol/upcasters.js';
export { subjectsFor, DEFAULT_PREFIX } from './protocol/subjects.js';
export type { Subjects } from './protocol/subjects.js';

// Errors.
export {
  ConcurrencyError,
  isConcurrencyError,
  ValidationError,
  isValidationError,
  CorruptLogError,
  isCorruptLogError,
  SessionNotFoundError,
  isSessionNotFoundError,
  StoreUnavailableError,
  isStoreUnavailableError,
  ShellConfigError,
  isShellConfigError,
  UnsupportedMachineError,
  isUnsupportedMachineError,
} from './errors.js';

// Pure machines: decide / evolve.
export { taskMachine } from './machines/taskMachine.js';
export { sessionMachine } from './machines/sessionMachine.js';
export { decide, backoffDelay } from './machines/decide.js';
export type { DecideDeps, Decision, PlannerInput } from './machines/decide.js';
export { evolve, fold, step, SessionFold, initialSessionState, serializeState, restoreState } from './machines/sessionState.js';
export type { SessionState, SessionSnapshot, TaskSnapshot, LastInput } from './machines/sessionState.js';
export type { SessionContext } from './machines/sessionMachine.js';
export type { TaskContext } from './machines/taskMachine.js';
export type { IdMap } from './machines/idMap.js';
export { compileMachine } from './machines/compiledMachine.js';
export type { CompiledMachine, EmittedAction, PlainState } from './machines/compiledMachine.js';
export { toPersistedSnapshot } from './machines/xstateSnapshot.js';
export { toPlannerState, outstanding, statusOf } from './machines/sessionQueries.js';
export type { SessionStatus, SessionPhase } from './machines/sessionQueries.js';

// Planning and compaction.
export { planText } from './planning/index.js';
export { createRelevanceCompactor, bpeTokenCounter } from './compaction/index.js';
export type { Compactor, CompactionRequest, CompactionResult, TokenCounter, RelevanceCompactorOptions } from './compaction/index.js';
export type { PlanTextOptions } from './planning/index.js';

// Persistence: the port and its adapters.
export { aggregateStream, hasLatestEvents, isOutboxStore, isStreamingRead } from './persistence/eventStore.js';
export type {
  EventStore,
  OutboxStore,
  StreamingRead,
  LatestEvents,
  LatestEvent,
  AppendOptions,
  AppendResult,
  AggregateOptions,
  AggregateResult,
  ReadOptions,
  ReadResult,
  ExpectedVersion,
  PendingCommand,
} from './persistence/eventStore.js';
export type { Snapshot, SnapshotStore } from './persistence/snapshotStore.js';
export { MemoryEventStore } from './persistence/memoryEventStore.js';
export { FileEventStore } from './persistence/fileEventStore.js';
export type { FileEventStoreOptions, FileEventStoreStats } from './persistence/fileEventStore.js';
export type { IndexedEventStore } from './persistence/indexedEventStore.js';
export { MemorySnapshotStore } from './persistence/memorySnapshotStore.js';
export { FileSnapshotStore } from './persistence/fileSnapshotStore.js';
export { MemoryInbox, FileInbox } from './persistence/inbox.js';
export type { Inbox } from './persistence/inbox.js';
export { JetStreamEventStore, KvSnapshotStore, ensureStream } from './persistence/jetstream/index.js';
export type { JetStreamEventStoreOptions, JetStreamEventStoreStats } from './persistence/jetstream/jetStreamEventStore.js';
export type { JetplanStreamOptions, ResolvedStreamOptions, ExecKind } from './persistence/jetstream/streamConfig.js';
export type { KvSnapshotStoreOptions } from './persistence/jetstream/kvSnapshotStore.js';

// Runtime.
export { Planner } from './actors/planner.js';
export type { Commit, CommitListener, Effects, PlannerOptions } from './actors/planner.js';
export { SessionRepository } from './actors/sessionRepository.js';
export type { SessionRepositoryOptions } from './actors/sessionRepository.js';
export { InProcessBus } from './actors/inProcessBus.js';
export { NoRouteError, isNoRouteError } from './actors/bus.js';
export type { Bus, BusMessage, BusHandler } from './actors/bus.js';
export { OutboxRelay } from './actors/outboxRelay.js';
export type { OutboxRelayOptions } from './actors/outboxRelay.js';
export { RetryScheduler } from './actors/retryScheduler.js';
export { realTimers } from './actors/timers.js';
export type { Timers } from './actors/timers.js';
export { LiveMirror } from './actors/liveMirror.js';
export type { CommitSource, SessionActor } from './actors/liveMirror.js';
export { createEmbeddedRuntime, defaultDecideDeps } from './runtime/embeddedRuntime.js';
export type { EmbeddedRuntime, EmbeddedRuntimeOptions, RecoverScope, RuntimeFault, FaultListener } from './runtime/embeddedRuntime.js';

// Executors.
export { demoHandler } from './executors/demoExecutor.js';
export { startBusExecutor, ExecutorStoppedError, isExecutorStoppedError } from './executors/busExecutor.js';
export type { BusExecutorOptions } from './executors/busExecutor.js';
export { isExecutorReport } from './executors/report.js';
export type { TaskHandler, HandlerOutcome, ExecutorReport } from './executors/report.js';
export { DEFAULT_MAX_REPORT_BYTES } from './executors/fitReport.js';
export { createShellHandler } from './executors/shellExecutor.js';
export type { ShellHandlerOptions } from './executors/shellExecutor.js';

// NATS: the planner service, the executor SDK and the client.
export { startPlannerService } from './service/plannerService.js';
export type { PlannerService, PlannerServiceOptions } from './service/plannerService.js';
export type { RecoveryResult } from './service/recovery.js';
export { Metrics } from './observability/metrics.js';
export { silentLogger } from './observability/logger.js';
export { createExecutor } from './nats/executor.js';
export type { Executor, ExecutorOptions, ExecutorKind } from './nats/executor.js';
export { KvExecutorInbox } from './nats/executorInbox.js';
export type { KvExecutorInboxOptions } from './nats/executorInbox.js';
export { createClient, newSessionId } from './nats/client.js';
export { purgeEndedSessions } from './nats/purgeSessions.js';
export type { PurgeOptions, PurgeResult } from './nats/purgeSessions.js';
export { purgeDataDir } from './runtime/purgeDataDir.js';
export type { DataDirPurgeOptions, DataDirPurgeResult } from './runtime/purgeDataDir.js';
export type { JetplanClient, ClientOptions, SubmitOptions, SessionSummary, EventWatch, Published, PublishOptions, WatchOptions, InputOutcome } from './nats/client.js';
export { connectNats, NatsConnectError, isNatsConnectError } from './nats/connect.js';
export type { NatsConnectionOptions } from './nats/connect.js';
