/**
 * The service's side of the leader lease: on election, recover the sessions (republish what they
 * wait on, arm their retry timers), then consume input; on losing the lease, stop. Changes run in
 * order, and nothing a term started (consumer, timers, a deferred recovery pass) outlives it.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Planner } from '../actors/planner.js';
import { RetryScheduler } from '../actors/retryScheduler.js';
import type { SessionRepository } from '../actors/sessionRepository.js';
import type { JetStreamEventStore } from '../persistence/jetstream/index.js';
import type { InputConsumer } from './inputConsumer.js';
import type { JetStreamEffects } from './jetStreamEffects.js';
import { LeaderLease } from './leaderLease.js';
import { recoverSessions, type RecoveryResult } from './recovery.js';
import { sleepUnlessAborted } from '../shared/waits.js';

/** How this instance campaigns. */
export interface CampaignOptions {
  nc: NatsConnection;
  logger: Logger;
  /** The lease's key in its bucket: one lease per stream. */
  leaseKey: string;
  instanceId?: string | undefined;
  leaseTtlMs?: number | undefined;
  leaseBucket?: string | undefined;
  /** Told when this instance starts consuming as leader (true) and when it steps down (false). */
  onLeadershipChange?: ((leader: boolean) => void) | undefined;
}

/** The parts of the service a leader runs. */
export interface LeaderParts {
  streamName: string;
  clock: () => number;
  store: JetStreamEventStore;
  repository: SessionRepository;
  effects: JetStreamEffects;
  planner: Planner;
  consumer: InputConsumer;
}

/** This instance's side of the leader lease. */
export interface Leadership {
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
export async function campaign(options: CampaignOptions, parts: LeaderParts): Promise<Leadership> {
  const { nc, logger } = options;
  const { consumer } = parts;
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
  /** Whether a term got as far as consuming, so that its end is worth telling. */
  let consuming = false;
  const tell = (leader: boolean) => {
    try {
      options.onLeadershipChange?.(leader);
    } catch (err) {
      logger.error({ err }, 'onLeadershipChange threw');
    }
  };

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
    consuming = true;
    tell(true);
    if (recovered.deferred.length > 0) deferredRecovery = recoverDeferred(deps, recovered.deferred, stillLeading, signal);
  };
  /**
   * Stops what the term started. A deferred recovery pass under way is waited for (it may still
   * publish, so the service's effects must stay open until it ends); the timers it would arm are
   * not, the term's scheduler being closed by then.
   */
  const endTerm = async () => {
    term.abort();
    // Closed first: only a leader fires retries, and the drain below may take a while (the next
    // leader arms them from the log).
    retries?.close();
    await consumer.stop();
    // Told once it no longer consumes, not after a deferred recovery pass that may still run.
    if (consuming && !closing) tell(false);
    consuming = false;
    await deferredRecovery;
  };

  const lease = await LeaderLease.start({
    nc, key: options.leaseKey, instanceId: options.instanceId ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`,
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
  parts: LeaderParts,
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
      await sleepUnlessAborted(Math.min(5_000, 200 * 2 ** attempt), signal);
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
    await sleepUnlessAborted(5_000, signal);
    if (!stillLeading()) return;
    left = (await recoverSessions({ ...deps, sessionIds: left, deferFailing: true }).catch(() => ({ deferred: left }))).deferred;
    deps.logger.info({ left: left.length }, 'deferred sessions recovered again');
  }
}

