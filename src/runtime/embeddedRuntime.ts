import { ValidationError } from '../errors.js';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { InProcessBus } from '../actors/inProcessBus.js';
import { HEADER, NoRouteError, type Bus } from '../actors/bus.js';
import { OutboxRelay } from '../actors/outboxRelay.js';
import { Planner, type Commit } from '../actors/planner.js';
import { RetryScheduler } from '../actors/retryScheduler.js';
import type { Timers } from '../actors/timers.js';
import { SessionRepository } from '../actors/sessionRepository.js';
import { bpeTokenCounter, createMemoTokenCounter, createRelevanceCompactor } from '../compaction/index.js';
import { planText } from '../planning/index.js';
import { FileEventStore } from '../persistence/fileEventStore.js';
import { FileSnapshotStore } from '../persistence/fileSnapshotStore.js';
import { MemoryEventStore } from '../persistence/memoryEventStore.js';
import { MemorySnapshotStore } from '../persistence/memorySnapshotStore.js';
import { hasLatestEvents, type EventStore, type OutboxStore } from '../persistence/eventStore.js';
import type { SnapshotStore } from '../persistence/snapshotStore.js';
import { ENDING_EVENT_TYPES, outstanding, statusOf } from '../machines/sessionQueries.js';
import { toOutbox } from '../actors/planner.js';
import { parseInput } from '../protocol/parseInput.js';
import { subjectsFor, type Subjects } from '../protocol/subjects.js';
import { Metrics } from '../observability/metrics.js';
import { silentLogger } from '../observability/logger.js';
import type { DecideDeps } from '../machines/decide.js';
import { Faults, InputFailures, faultReportingStore, type FaultListener } from './faults.js';
import { checkIntegerOption, checkObjectWithMethods, checkPlannerDeps } from '../shared/optionChecks.js';

export type { FaultListener, RuntimeFault } from './faults.js';

/** Options of {@link createEmbeddedRuntime}. */
export interface EmbeddedRuntimeOptions {
  /** Data directory of the file store; omit for an in-memory store. */
  dataDir?: string;
  /** fsync each append (default true). */
  fsync?: boolean;
  /**
   * Save a session's snapshot each time its version crosses a multiple of this, a positive
   * integer (default 100). Snapshots are a cache that shortens loads; they cannot be switched off.
   */
  snapshotEvery?: number;
  /** Where the runtime logs (pino); default silent. The runtime does not close it. */
  logger?: Logger;
  /**
   * Wall-clock time, ms since the Unix epoch (default `Date.now`): an input's `now`, which the
   * decider records and retry deadlines count from, and the retry timers' and metrics' time.
   */
  clock?: () => number;
  /**
   * Message id of an input handled without `meta.messageId` (default `randomUUID`); bus inputs
   * with a message id header keep theirs. The message id is the input's idempotency key: a session
   * drops an input whose id it has seen (among its last 1,024), so ids must be unique across
   * restarts on the same `dataDir`. A counter that starts again at 1 makes new inputs look like
   * repeats, and they are silently dropped.
   */
  newId?: () => string;
  /** Timers of the retry scheduler and the outbox relay (tests drive them by hand). */
  timers?: Timers;
  /**
   * The decider's planning, compaction and token counting (default {@link defaultDecideDeps}):
   * plug in your own `plan`, e.g. one backed by a model; it must stay deterministic for a given
   * text, since replay never calls it.
   */
  decideDeps?: DecideDeps;
}

/** What {@link EmbeddedRuntime.recover} re-arms: one session's work, or (without it) every session's. */
export interface RecoverScope {
  sessionId?: string;
}

/** The embedded deployment: file (or memory) store, in-process bus, planner and its helpers. */
export interface EmbeddedRuntime {
  /**
   * Bytes of torn or damaged tail the file store cut from its log on open (0 after a clean
   * shutdown, and for a memory store); they are kept beside the log (`events.log.tail-*`).
   */
  recoveredTailBytes: number;
  planner: Planner;
  bus: Bus;
  store: EventStore & OutboxStore;
  repository: SessionRepository;
  subjects: Subjects;
  metrics: Metrics;
  logger: Logger;
  clock: () => number;
  newId: () => string;
  /**
   * Re-arms what a previous run left open: outbox commands, running tasks, questions, timers. With
   * a `sessionId`, only that session's: resuming one session must not run the others.
   */
  recover(scope?: RecoverScope): Promise<{ sessions: number; commands: number }>;
  /**
   * Subscribes to faults the runtime cannot get past (an unusable store, an input that keeps
   * failing); a session driver ends on one instead of waiting for progress that cannot come.
   */
  onFault(listener: FaultListener): () => void;
  close(): Promise<void>;
}

/** The default pure dependencies of the decider: the text planner and the relevance compactor. */
export function defaultDecideDeps(): DecideDeps {
  const counter = createMemoTokenCounter(bpeTokenCounter);
  return {
    plan: (text, startIndex) => planText(text, { startIndex }),
    compactor: createRelevanceCompactor({ counter }),
    countTokens: (text) => counter.count(text),
  };
}

/**
 * The composition root of the embedded deployment: builds everything, connects nothing else.
 * @throws ValidationError for a bad option, before the data directory is touched.
 * @throws StoreUnavailableError when `dataDir` is not a directory or another process holds it.
 */
export async function createEmbeddedRuntime(options: EmbeddedRuntimeOptions = {}): Promise<EmbeddedRuntime> {
  checkRuntimeOptions(options);
  const logger = options.logger ?? silentLogger;
  const clock = options.clock ?? Date.now;
  const newId = options.newId ?? randomUUID;
  const faults = new Faults(logger);
  const file = options.dataDir ? await FileEventStore.open(options.dataDir, { fsync: options.fsync ?? true }) : undefined;
  const store = faultReportingStore(file ?? new MemoryEventStore(), faults);
  const snapshots: SnapshotStore = options.dataDir ? new FileSnapshotStore(options.dataDir) : new MemorySnapshotStore();
  const bus = new InProcessBus();
  const subjects = subjectsFor();
  const repository = new SessionRepository({ store, snapshots, snapshotEvery: options.snapshotEvery ?? 100 });
  const relay = new OutboxRelay({
    bus,
    subjects,
    outbox: store,
    logger,
    ...(options.timers ? { timers: options.timers } : {}),
    // Work of a session that was cancelled (or ended) before its command got through is not sent.
    isObsolete: async (entry) => statusOf(await repository.load(entry.sessionId)) !== 'active',
  });
  const planner = new Planner({ store, repository, decideDeps: options.decideDeps ?? defaultDecideDeps(), effects: relay, clock, newId, logger });
  const retries = new RetryScheduler(planner, clock, logger, options.timers);
  const metrics = new Metrics(clock);
  planner.onCommit((commit) => metrics.record(commit));
  planner.onCommit((commit) => publishEvents(bus, subjects, commit, logger));
  const unsubscribe = subscribeInputs(bus, subjects, planner, logger, new InputFailures(faults));

  const recover = (scope: RecoverScope = {}) => recoverSessions({ store, repository, relay, retries, clock }, scope);

  async function close() {
    unsubscribe();
    faults.close();
    retries.close();
    await planner.drain();
    await relay.close();
    await store.close();
  }

  const onFault = (listener: FaultListener) => faults.on(listener);
  return { planner, bus, store, repository, subjects, metrics, logger, clock, newId, recover, onFault, close, recoveredTailBytes: file?.recoveredTailBytes ?? 0 };
}

/** Checks what is checked before anything is opened: a store opened first would stay locked. */
function checkRuntimeOptions(options: EmbeddedRuntimeOptions): void {
  // An empty path is not "no directory": a session would run and be kept nowhere.
  if (options.dataDir !== undefined && options.dataDir.trim() === '') throw new ValidationError('dataDir must not be empty (omit it for an in-memory store)');
  checkIntegerOption('snapshotEvery', options.snapshotEvery, 1);
  // A JavaScript caller's `logger: {}` or `newId: 'x'` would otherwise fail at the first input (a
  // logger without `warn` even crashes the process from the relay's retry), far from the option.
  checkPlannerDeps(options);
  checkObjectWithMethods('timers', options.timers, ['set', 'clear']);
}

/**
 * Publishes a commit's events on the bus too (`<prefix>.ev.<sessionId>`, as they appear on NATS),
 * for whoever follows a session there: an executor aborts a task whose session has ended. After the
 * append, and without waiting: nobody needs to listen (the log is the record).
 */
function publishEvents(bus: Bus, subjects: Subjects, commit: Commit, logger: Logger): void {
  for (const event of commit.events) {
    const headers = { [HEADER.type]: event.type, [HEADER.correlationId]: event.correlationId, [HEADER.causationId]: event.causationId };
    bus.publish(subjects.events(commit.sessionId), event, headers).catch((err: unknown) => {
      if (!(err instanceof NoRouteError)) logger.warn({ err, sessionId: commit.sessionId, seq: event.sequence }, 'event not delivered on the bus');
    });
  }
}

/**
 * Feeds `jetplan.in.<session>` messages into the planner; invalid ones become InputRejected. A
 * failure rejects the publish (so the publisher retries) and is counted, so that an input that
 * keeps failing becomes a fault rather than a silent loop.
 */
function subscribeInputs(bus: Bus, subjects: Subjects, planner: Planner, logger: Logger, failures: InputFailures): () => void {
  return bus.subscribe(subjects.allInputs, async (message) => {
    const sessionId = message.subject.split('.').pop()!;
    const parsed = parseInput(message.data);
    const input = parsed.ok ? parsed.input : { type: 'InvalidInput' as const, reason: parsed.reason, inputType: parsed.inputType };
    const meta = {
      ...(message.headers[HEADER.messageId] ? { messageId: message.headers[HEADER.messageId] } : {}),
      ...(message.headers[HEADER.correlationId] ? { correlationId: message.headers[HEADER.correlationId] } : {}),
    };
    try {
      await planner.handle(sessionId, input, meta);
      failures.applied(meta.messageId);
    } catch (err) {
      logger.error({ err, sessionId }, 'input not applied');
      failures.failed(sessionId, meta.messageId, err);
      throw err;
    }
  });
}

/** What {@link recoverSessions} works with. */
interface RecoveryDeps {
  store: EventStore & OutboxStore;
  repository: SessionRepository;
  relay: OutboxRelay;
  retries: RetryScheduler;
  clock: () => number;
}

/**
 * The sessions whose latest event does not end them: all a recovery needs to load. Folding every
 * session ever kept made a data dir's start slower with each session it had run.
 */
async function notEnded(store: EventStore): Promise<string[]> {
  if (!hasLatestEvents(store)) return store.listStreams();
  const ids: string[] = [];
  for await (const event of store.latestEvents()) if (!ENDING_EVENT_TYPES.has(event.type)) ids.push(event.streamId);
  return ids;
}

/** Re-arms the open work of the sessions in scope (see {@link EmbeddedRuntime.recover}). */
async function recoverSessions(
  { store, repository, relay, retries, clock }: RecoveryDeps,
  scope: RecoverScope,
): Promise<{ sessions: number; commands: number }> {
  const only = scope.sessionId;
  const commands = (await store.pendingCommands()).filter((c) => only === undefined || c.sessionId === only);
  // What the outbox still holds is published by the relay; re-issuing it from state as well
  // would send the same dispatch twice. (Sessions moving on while this loop runs can still
  // meet a re-issue of their new dispatch: the executor runs a dispatch id once.)
  const pending = new Set(commands.map((c) => c.id));
  relay.perform(commands);
  const ids = only === undefined ? await notEnded(store) : [only];
  let sessions = 0;
  for (const id of ids) {
    const state = await repository.load(id);
    if (state.version === 0 || statusOf(state) !== 'active') continue;
    sessions++;
    const open = outstanding(state);
    // Work a crash left open is issued again; executors answer a known dispatch id from their inbox.
    if (open.command?.type === 'ExecuteTask' && !pending.has(open.command.dispatchId)) {
      relay.perform(toOutbox([open.command], state, { messageId: `recover.${id}`, now: clock() }));
    }
    retries.watch(state);
  }
  return { sessions, commands: commands.length };
}
