/**
 * What a new leader does before it takes input: re-issue what the sessions are waiting on. On
 * JetStream the stream is the outbox, so the pending work is derived from session state: the
 * ExecuteTask of each running task is published again (Nats-Msg-Id = dispatch id, so the stream
 * stores it once within its duplicate window; executors' inbox covers it beyond) and each retry
 * timer is re-armed (it fires at once when already due).
 */
import type { Effects } from '../actors/planner.js';
import { toOutbox } from '../actors/planner.js';
import type { RetryScheduler } from '../actors/retryScheduler.js';
import type { SessionRepository } from '../actors/sessionRepository.js';
import { outstanding, statusOf } from '../machines/sessionQueries.js';
import type { EventStore } from '../persistence/eventStore.js';
import type { Logger } from 'pino';

/** What a recovery found. */
export interface RecoveryResult {
  /** Active sessions. */
  sessions: number;
  /** ExecuteTask commands published again. */
  republished: number;
  /** Retry timers armed. */
  timers: number;
  /** Sessions that could not be loaded (a corrupt log); each is logged and skipped. */
  failed: number;
  /** Sessions skipped without a fold: their latest event ended them. */
  ended: number;
}

/** Events after which a session takes no work (only rejections and ignored reports follow). */
const ENDING = new Set(['SessionCompleted', 'SessionFailed', 'SessionCancelled']);

/** Options of {@link recoverSessions}. */
export interface RecoveryOptions {
  store: EventStore;
  repository: SessionRepository;
  effects: Effects;
  retries: RetryScheduler;
  clock: () => number;
  logger: Logger;
  /** Sessions loaded at once (default 16). */
  concurrency?: number;
}

/** Re-issues the outstanding commands and timers of every active session. */
export async function recoverSessions(o: RecoveryOptions): Promise<RecoveryResult> {
  const result: RecoveryResult = { sessions: 0, republished: 0, timers: 0, failed: 0, ended: 0 };
  const ids = await o.store.listStreams();
  const width = o.concurrency ?? 16;
  for (let i = 0; i < ids.length; i += width) {
    await Promise.all(
      ids.slice(i, i + width).map((id) =>
        // One unreadable session must not keep the service from taking input for all the others.
        recoverOne(o, id, result).catch((err: unknown) => {
          result.failed++;
          o.logger.error({ err, sessionId: id }, 'session not recovered; skipped');
        }),
      ),
    );
  }
  return result;
}

async function recoverOne(o: RecoveryOptions, sessionId: string, result: RecoveryResult): Promise<void> {
  // Most sessions of a long-lived stream have ended: one read of the latest event (no scan on
  // JetStream) tells, instead of folding each session's whole log.
  // Another instance may have advanced the session while this one was standby: read the log.
  o.repository.forget(sessionId);
  const latest = (await o.repository.read(sessionId, { last: 1 })).events[0];
  if (latest && ENDING.has(latest.type)) {
    result.ended++;
    return;
  }
  const state = await o.repository.load(sessionId);
  if (statusOf(state) !== 'active') return;
  result.sessions++;
  const open = outstanding(state);
  if (open.command?.type === 'ExecuteTask') {
    o.effects.perform(toOutbox([open.command], state, { messageId: `recover.${sessionId}`, now: o.clock() }));
    result.republished++;
  }
  if (open.retry) result.timers++;
  o.retries.watch(state);
}
