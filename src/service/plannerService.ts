/**
 * The composition root of the NATS deployment: one JetStream stream is both the bus and the event
 * store. Instances run active/standby under a KV leader lease; only the leader consumes inputs,
 * arms retry timers and republishes outstanding commands. Correctness does not rest on the lease:
 * appends expect the session subject's last sequence and ExecuteTask is deduplicated by dispatch id.
 */
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { Planner } from '../actors/planner.js';
import { SessionRepository } from '../actors/sessionRepository.js';
import { Metrics } from '../observability/metrics.js';
import { silentLogger } from '../observability/logger.js';
import { JetStreamEventStore, KvSnapshotStore, PubAckMux } from '../persistence/jetstream/index.js';
import { watchStatus } from '../persistence/jetstream/connectionGate.js';
import { defaultDecideDeps } from '../runtime/embeddedRuntime.js';
import { checkBucketName } from '../nats/executorInbox.js';
import { checkConnectionOption, checkFunctionOption, checkIntegerOption, checkPlannerDeps } from '../shared/optionChecks.js';
import { isAtRest, type DecideDeps } from '../machines/decide.js';
import { plannerNames } from '../protocol/deploymentNames.js';
import { DEFAULT_MAX_INPUT_BYTES } from './decodeInput.js';
import { startHttpServer, stopHttpServer } from './httpServer.js';
import { assertOwnInputConsumer, InputConsumer } from './inputConsumer.js';
import { JetStreamEffects } from './jetStreamEffects.js';
import type { RecoveryResult } from './recovery.js';
import { campaign, type LeaderParts, type Leadership } from './leadership.js';

/** Options of {@link startPlannerService}. */
export interface PlannerServiceOptions {
  /** Connect with `maxReconnectAttempts: -1` so the service survives server restarts. Not closed by the service. */
  nc: NatsConnection;
  /** Default 'JETPLAN'. */
  streamName?: string;
  /** Default 'jetplan'. */
  subjectPrefix?: string;
  /** Port of /healthz and /metrics, an integer 0..65535: 0 = ephemeral, undefined = no HTTP server. */
  httpPort?: number;
  /** Where the service logs (pino); default silent. The service does not close it. */
  logger?: Logger;
  /**
   * Wall-clock time, ms since the Unix epoch (default `Date.now`): an input's `now`, which the
   * decider records and its retry deadlines count from, and the metrics' time.
   */
  clock?: () => number;
  /**
   * Message id of an input given to {@link PlannerService.planner}'s `handle` without
   * `meta.messageId` (default `randomUUID`); inputs from the stream keep their `Nats-Msg-Id` (else
   * `in.<sequence>`). The message id is the input's idempotency key: a session drops an input whose
   * id it has seen (among its last 1,024), so ids must be unique across restarts and instances of
   * the deployment. A counter that starts again at 1 makes new inputs look like repeats, and they
   * are silently dropped.
   */
  newId?: () => string;
  /** This instance's name in the lease (default host-pid-random). */
  instanceId?: string;
  /**
   * Lease TTL, the TTL of the `jetplan_leases` bucket, ms (default 10 s): an integer from 300 (the
   * leader renews every third of it) to 2^31 − 1 (a timer's limit).
   */
  leaseTtlMs?: number;
  /** Lease bucket (default 'jetplan_leases'). */
  leaseBucket?: string;
  /**
   * Told each time this instance becomes leader and consumes input (true; {@link PlannerService.whenLeader}
   * resolves on the first) and each time it steps down, its lease lost (false), e.g. to log it.
   */
  onLeadershipChange?: (leader: boolean) => void;
  /** Snapshot bucket (default 'jetplan_snapshots' for stream JETPLAN and prefix jetplan; see {@link plannerNames}). */
  snapshotBucket?: string;
  /** Largest input body accepted, bytes: a positive integer (default 64 KiB). */
  maxInputBytes?: number;
  /** Durable name of the input consumer (default 'jetplan-planner' for prefix jetplan; see {@link plannerNames}). */
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

/** Bytes of a message left for an ExecuteTask's headers when its body is sized (decideDeps.maxCommandBytes); 1/16 of a smaller limit, at least 1 KiB (headers take ~150–400). */
export const COMMAND_HEADER_ROOM = 8 * 1024;

/** Fewest ms of a lease TTL: renewals every third of it must get through (`serve --lease-ttl-ms` too). */
export const MIN_LEASE_TTL_MS = 300;

/** Most ms of a lease TTL: the lease's timers (2/3 of it) must fit in a Node timer. */
const MAX_LEASE_TTL_MS = 2 ** 31 - 1;

/**
 * Builds the service and starts campaigning for leadership.
 * @throws ValidationError for an option out of range or of the wrong kind, before anything is
 * connected or created.
 */
export async function startPlannerService(serviceOptions: PlannerServiceOptions): Promise<PlannerService> {
  checkServiceOptions(serviceOptions);
  const options = { ...serviceOptions, logger: serviceOptions.logger ?? silentLogger };
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
    leadership = await campaign({
      nc: options.nc, logger: options.logger, leaseKey: parts.leaseKey,
      instanceId: options.instanceId, leaseTtlMs: options.leaseTtlMs, leaseBucket: options.leaseBucket,
      onLeadershipChange: options.onLeadershipChange,
    }, parts);
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

/**
 * The rules of the connection, the numeric options and the injected functions, which a JavaScript
 * caller can get wrong (names are checked where they are used, as the stream is opened).
 */
function checkServiceOptions(options: PlannerServiceOptions): void {
  checkConnectionOption('nc', options.nc);
  checkPlannerDeps(options);
  checkFunctionOption('onLeadershipChange', options.onLeadershipChange);
  checkIntegerOption('httpPort', options.httpPort, 0, 65_535);
  checkIntegerOption('leaseTtlMs', options.leaseTtlMs, MIN_LEASE_TTL_MS, MAX_LEASE_TTL_MS);
  checkIntegerOption('maxInputBytes', options.maxInputBytes, 1);
  // nats.js refuses a bad bucket name with a plain Error, met only after the stream was made.
  if (options.leaseBucket !== undefined) checkBucketName('leaseBucket', options.leaseBucket);
  if (options.snapshotBucket !== undefined) checkBucketName('snapshotBucket', options.snapshotBucket);
}

/** What a service is made of, built before it campaigns. */
interface Components extends LeaderParts {
  streamName: string;
  leaseKey: string;
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
async function buildComponents(options: PlannerServiceOptions & { logger: Logger }): Promise<Components> {
  const { nc, logger } = options;
  const clock = options.clock ?? Date.now;
  const streamName = options.streamName ?? 'JETPLAN';
  const store = await JetStreamEventStore.create(nc, { streamName, ...(options.subjectPrefix !== undefined ? { subjectPrefix: options.subjectPrefix } : {}) });
  const subjectPrefix = store.subjectPrefix;
  const names = plannerNames(streamName, subjectPrefix);
  const jsm = await jetstreamManager(nc, { timeout: 3_000 });
  const durableName = options.durableName ?? names.durableName;
  try {
    await assertOwnInputConsumer(jsm, { streamName, subjectPrefix, durableName }); // at start: one clear error
  } catch (err) {
    await store.close();
    throw err;
  }
  const snapshots = await KvSnapshotStore.create(nc, { bucket: options.snapshotBucket ?? names.snapshotBucket });
  const js = jetstream(nc);
  const publisher = new PubAckMux(nc);
  const effects = new JetStreamEffects({ publisher, isClosed: () => nc.isClosed(), subjectPrefix, logger });
  const repository = new SessionRepository({ store, snapshots });
  // A dispatch's context is kept within what one message can carry (less room for headers: ids
  // and the correlation id), whatever its token budget would allow.
  const headerRoom = Math.min(COMMAND_HEADER_ROOM, Math.max(1_024, Math.floor(store.messageLimit / 16)));
  const decideDeps: DecideDeps = { maxCommandBytes: store.messageLimit - headerRoom, ...(options.decideDeps ?? defaultDecideDeps()) };
  const planner = new Planner({
    store, repository, decideDeps, effects, clock, newId: options.newId ?? randomUUID, logger,
  });
  const metrics = new Metrics(clock);
  planner.onCommit((commit) => metrics.record(commit));
  const consumer = new InputConsumer({
    js, jsm, streamName, subjectPrefix, durableName, planner, metrics, clock, logger,
    maxInputBytes: options.maxInputBytes ?? DEFAULT_MAX_INPUT_BYTES,
    appliedInputs: async (sessionId) => {
      const state = await repository.load(sessionId);
      const last = state.lastInput;
      const unfinished = last && !isAtRest(state, last.now, decideDeps) ? { messageId: last.messageId, inputSequence: last.inputSequence } : undefined;
      return { recentInputs: state.recentInputs, inputSequenceFloor: state.inputSequenceFloor, unfinished };
    },
  });
  return { streamName, leaseKey: names.leaseKey, clock, store, snapshots, jsm, publisher, effects, repository, planner, metrics, consumer };
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
