/**
 * The composition root of the NATS deployment: one JetStream stream is both the bus and the event
 * store. Instances run active/standby under a KV leader lease; only the leader consumes inputs,
 * arms retry timers and republishes outstanding commands. Correctness does not rest on the lease:
 * appends expect the session subject's last sequence and ExecuteTask is deduplicated by dispatch id.
 */
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { hostname } from 'node:os';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { Planner } from '../actors/planner.js';
import { RetryScheduler } from '../actors/retryScheduler.js';
import { SessionRepository } from '../actors/sessionRepository.js';
import { Metrics } from '../observability/metrics.js';
import { JetStreamEventStore, KvSnapshotStore, PubAckMux } from '../persistence/jetstream/index.js';
import { watchStatus } from '../persistence/jetstream/connectionGate.js';
import { defaultDecideDeps } from '../runtime/embeddedRuntime.js';
import type { DecideDeps } from '../machines/decide.js';
import { DEFAULT_MAX_INPUT_BYTES } from './decodeInput.js';
import { startHttpServer, stopHttpServer } from './httpServer.js';
import { InputConsumer } from './inputConsumer.js';
import { JetStreamEffects } from './jetStreamEffects.js';
import { LeaderLease } from './leaderLease.js';
import { recoverSessions, type RecoveryResult } from './recovery.js';

/** Options of {@link startPlannerService}. */
export interface PlannerServiceOptions {
  /** Connect with `maxReconnectAttempts: -1` so the service survives server restarts. Not closed by the service. */
  nc: NatsConnection;
  /** Default 'JETPLAN'. */
  streamName?: string;
  /** Default 'jetplan'. */
  subjectPrefix?: string;
  /** Port of /healthz and /metrics: 0 = ephemeral, undefined = no HTTP server. */
  httpPort?: number;
  logger: Logger;
  clock?: () => number;
  newId?: () => string;
  /** This instance's name in the lease (default host-pid-random). */
  instanceId?: string;
  /** Lease TTL, the TTL of the `jetplan_leases` bucket (default 10 s). */
  leaseTtlMs?: number;
  /** Lease bucket (default 'jetplan_leases'). */
  leaseBucket?: string;
  /** Snapshot bucket (default 'jetplan_snapshots' for stream JETPLAN, else 'jetplan_snapshots_<stream>'). */
  snapshotBucket?: string;
  /** Largest input body accepted, bytes (default 64 KiB). */
  maxInputBytes?: number;
  /** Durable name of the input consumer (default 'jetplan-planner'). */
  durableName?: string;
  /**
   * The decider's planning, compaction and token counting (default: the built-in text planner,
   * relevance compactor and cl100k tokenizer). Plug in your own `plan`, e.g. one backed by a model;
   * it must stay deterministic for a given text, since replay never calls it.
   */
  decideDeps?: DecideDeps;
}

/** A running planner service. */
export interface PlannerService {
  /** Stops taking input, finishes inputs under way, releases the lease. Does not close `nc`. */
  close(): Promise<void>;
  isLeader(): boolean;
  /** Resolves once this instance is leader, has recovered and consumes input. */
  whenLeader: Promise<void>;
  metrics: Metrics;
  httpPort?: number;
  planner: Planner;
  /** What the last recovery (on becoming leader) re-issued. */
  lastRecovery(): RecoveryResult | undefined;
}

const kvName = (s: string) => s.replace(/[^A-Za-z0-9_-]/g, '_');

/** Waits `ms`, or less once `signal` is aborted (a leadership term ending need not wait it out). */
const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });

/** Builds the service and starts campaigning for leadership. */
export async function startPlannerService(options: PlannerServiceOptions): Promise<PlannerService> {
  const parts = await buildComponents(options);
  const { streamName, jsm, consumer, metrics, planner } = parts;
  // The port first: a service that cannot serve its health checks must not start leading (and a
  // supervisor must see it exit), so a failure here closes what was built and throws.
  let leadership: Leadership | undefined;
  let http: Awaited<ReturnType<typeof startHttpServer>> | undefined;
  // Only /healthz asks whether NATS is up; its status listener on the caller's nc goes at close.
  let connection: ReturnType<typeof watchConnection> | undefined;
  try {
    http = options.httpPort === undefined ? undefined : await startHttpServer(options.httpPort, {
      natsConnected: (connection = watchConnection(options.nc)).isUp,
      checkStream: async () => void (await jsm.streams.info(streamName)),
      isLeader: () => leadership?.isLeader() ?? false,
      consumerPending: () => consumer.pending(),
      metrics, logger: options.logger,
    });
    leadership = await campaign(options, parts);
  } catch (err) {
    await closeComponents(parts, http?.server).catch(() => undefined);
    connection?.stop();
    throw err;
  }
  const lead = leadership;

  let closed = false;
  async function close(): Promise<void> {
    if (closed) return;
    closed = true;
    try {
      await shutdown(parts, lead, http?.server);
    } finally {
      connection?.stop();
    }
  }

  return {
    close, whenLeader: lead.whenLeader, metrics, planner,
    isLeader: () => lead.isLeader(),
    lastRecovery: () => lead.lastRecovery(),
    ...(http ? { httpPort: http.port } : {}),
  };
}

/** What a service is made of, built before it campaigns. */
interface Components {
  streamName: string;
  clock: () => number;
  store: JetStreamEventStore;
  snapshots: KvSnapshotStore;
  jsm: JetStreamManager;
  publisher: PubAckMux;
  effects: JetStreamEffects;
  repository: SessionRepository;
  planner: Planner;
  metrics: Metrics;
  consumer: InputConsumer;
}

/** Opens the stores and wires the planner, its effects, metrics and the (not yet started) input consumer. */
async function buildComponents(options: PlannerServiceOptions): Promise<Components> {
  const { nc, logger } = options;
  const clock = options.clock ?? Date.now;
  const streamName = options.streamName ?? 'JETPLAN';
  const store = await JetStreamEventStore.create(nc, { streamName, ...(options.subjectPrefix ? { subjectPrefix: options.subjectPrefix } : {}) });
  const subjectPrefix = store.subjectPrefix;
  const snapshots = await KvSnapshotStore.create(nc, {
    bucket: options.snapshotBucket ?? (streamName === 'JETPLAN' ? 'jetplan_snapshots' : `jetplan_snapshots_${kvName(streamName)}`),
  });
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc, { timeout: 3_000 });
  const publisher = new PubAckMux(nc);
  const effects = new JetStreamEffects({ publisher, isClosed: () => nc.isClosed(), subjectPrefix, logger });
  const repository = new SessionRepository({ store, snapshots });
  const planner = new Planner({
    store, repository, decideDeps: options.decideDeps ?? defaultDecideDeps(), effects, clock, newId: options.newId ?? randomUUID, logger,
  });
  const metrics = new Metrics(clock);
  planner.onCommit((commit) => metrics.record(commit));
  const durableName = options.durableName ?? 'jetplan-planner';
  const consumer = new InputConsumer({
    js, jsm, streamName, subjectPrefix, durableName, planner, metrics, clock, logger,
    maxInputBytes: options.maxInputBytes ?? DEFAULT_MAX_INPUT_BYTES,
    appliedInputs: (sessionId) => repository.load(sessionId),
  });
  return { streamName, clock, store, snapshots, jsm, publisher, effects, repository, planner, metrics, consumer };
}

/** This instance's side of the leader lease. */
interface Leadership {
  whenLeader: Promise<void>;
  isLeader(): boolean;
  lastRecovery(): RecoveryResult | undefined;
  /**
   * Ignores later elections, waits for the change under way, then stops consuming and retrying and
   * waits for a deferred recovery pass under way.
   */
  resign(): Promise<void>;
  /** Releases the lease; shutdown calls it only once the planner has drained. */
  release(): Promise<void>;
}

/** Joins the lease: on election recover then consume, on losing it stop consuming. Changes run in order. */
async function campaign(options: PlannerServiceOptions, parts: Components): Promise<Leadership> {
  const { nc, logger } = options;
  const { streamName, consumer } = parts;
  let retries: RetryScheduler | undefined;
  let recovery: RecoveryResult | undefined;
  let closing = false;
  /** Ends the current term: aborted when the lease is lost or the service closes. */
  let term = new AbortController();
  /** The background recovery of deferred sessions, awaited before a term's effects can be closed. */
  let deferredRecovery: Promise<void> = Promise.resolve();
  let transitions = Promise.resolve();
  let elected!: () => void;
  const whenLeader = new Promise<void>((resolve) => (elected = resolve));

  const lead = async () => {
    term = new AbortController();
    const { signal } = term;
    const stillLeading = () => !closing && !signal.aborted && lease.isLeader();
    retries = new RetryScheduler(parts.planner, parts.clock, logger);
    const { store, repository, effects, clock } = parts;
    const deps: RecoveryDeps = { store, repository, effects, clock, logger, retries };
    const recovered = await recoverThenConsume(parts, deps, stillLeading, signal);
    if (!recovered) return;
    recovery = recovered;
    elected();
    if (recovered.deferred.length > 0) deferredRecovery = recoverDeferred(deps, recovered.deferred, stillLeading, signal);
  };
  /**
   * Stops what the term started. A deferred recovery pass under way is waited for (it may still
   * publish, so the service's effects must stay open until it ends); the timers it would arm are
   * not, the term's scheduler being closed by then.
   */
  const endTerm = async () => {
    term.abort();
    await consumer.stop();
    retries?.close();
    await deferredRecovery;
  };

  const lease = await LeaderLease.start({
    nc, key: `planner.${kvName(streamName)}`, instanceId: options.instanceId ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`,
    ttlMs: options.leaseTtlMs ?? 10_000, logger, ...(options.leaseBucket ? { bucket: options.leaseBucket } : {}),
    onChange: (leader) => {
      if (closing && leader) return;
      // Lost: the term's waits (a recovery's backoff, the deferred pass's interval) end now rather
      // than hold up the step-down queued behind them.
      if (!leader) term.abort();
      transitions = transitions.then(leader ? lead : endTerm).catch((err: unknown) => logger.error({ err }, 'leadership change failed'));
    },
  });

  return {
    whenLeader, isLeader: () => lease.isLeader(), lastRecovery: () => recovery,
    resign: async () => {
      closing = true;
      term.abort();
      await transitions;
      await endTerm();
    },
    release: () => lease.close(),
  };
}

/** The options of every recovery pass of a term. */
type RecoveryDeps = Omit<Parameters<typeof recoverSessions>[0], 'sessionIds' | 'deferFailing'>;

/**
 * Recovers (retrying with backoff while it fails and this instance still leads), then starts the
 * input consumer. Resolves what was recovered once consuming; undefined if leadership was lost or
 * the service began closing, during a pass or before its result is acted on.
 */
async function recoverThenConsume(
  parts: Components,
  deps: RecoveryDeps,
  stillLeading: () => boolean,
  signal: AbortSignal,
): Promise<RecoveryResult | undefined> {
  const { streamName, consumer } = parts;
  const { logger } = deps;
  for (let attempt = 0; stillLeading(); attempt++) {
    try {
      // After a few whole passes, a session that keeps failing is deferred instead: one session
      // whose reads keep timing out must not keep the leader from taking input for all others.
      const recovery = await recoverSessions({ ...deps, deferFailing: attempt >= DEFER_AFTER_PASSES });
      // The pass takes a while: a term that ended meanwhile must not start consuming or report elected.
      if (!stillLeading()) return undefined;
      logger.info({ ...recovery, deferred: recovery.deferred.length, streamName }, 'leader: recovered sessions');
      consumer.start();
      return recovery;
    } catch (err) {
      logger.error({ err }, 'recovery failed; retrying');
      await sleep(Math.min(5_000, 200 * 2 ** attempt), signal);
    }
  }
  return undefined;
}

/** Whole recovery passes that may fail before failing sessions are deferred. */
const DEFER_AFTER_PASSES = 3;

/**
 * Recovers the deferred sessions in the background, every 5 s, while this instance leads. Never
 * rejects: the term's end awaits it.
 */
async function recoverDeferred(deps: RecoveryDeps, deferred: string[], stillLeading: () => boolean, signal: AbortSignal): Promise<void> {
  let left = deferred;
  while (left.length > 0 && stillLeading()) {
    await sleep(5_000, signal);
    if (!stillLeading()) return;
    left = (await recoverSessions({ ...deps, sessionIds: left, deferFailing: true }).catch(() => ({ deferred: left }))).deferred;
    deps.logger.info({ left: left.length }, 'deferred sessions recovered again');
  }
}

/** Closes in dependency order: stop taking input, drain the planner, then release the lease and stores. */
async function shutdown(parts: Components, leadership: Leadership, http: Server | undefined): Promise<void> {
  await leadership.resign();
  await parts.planner.drain();
  await parts.effects.close();
  parts.publisher.close();
  await leadership.release();
  await closeComponents(parts, http);
}

/** Closes the HTTP server and the stores (the last step of a shutdown, or all of a failed start). */
async function closeComponents(parts: Components, http: Server | undefined): Promise<void> {
  await parts.effects.close();
  parts.publisher.close();
  if (http) await stopHttpServer(http);
  await parts.store.close();
  await parts.snapshots.close();
}

/**
 * Tracks whether the connection is up: false between a disconnect and the reconnect, or once
 * closed. `stop` removes its status listener from `nc` (which the service does not own).
 */
function watchConnection(nc: NatsConnection): { isUp: () => boolean; stop: () => void } {
  let up = true;
  const stop = watchStatus(nc, (s) => {
    if (s.type === 'disconnect') up = false;
    else if (s.type === 'reconnect') up = true;
  });
  return { isUp: () => up && !nc.isClosed(), stop };
}
