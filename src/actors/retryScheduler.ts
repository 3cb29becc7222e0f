import type { Logger } from 'pino';
import { isCorruptLogError, isValidationError } from '../errors.js';
import { dispatchIdFor, outstanding } from '../machines/sessionQueries.js';
import type { SessionState } from '../machines/sessionState.js';
import type { Planner } from './planner.js';
import { MAX_TIMER_MS, realTimers, type Timers } from './timers.js';
import { RecentMap } from '../shared/recentMap.js';

/** How long to wait before sending a RetryDue again after the planner failed to apply it. */
const RETRY_AGAIN_MS = 1_000;
/** The longest wait between attempts at a RetryDue that keeps failing for good. */
const MAX_RETRY_AGAIN_MS = 60_000;

/**
 * A session's retry: its timer while it waits, none while its RetryDue is being applied. The entry
 * is the retry's identity: whoever finds another one (or none) in `armed` is superseded.
 */
interface ArmedRetry {
  key: string;
  handle: unknown;
}

/** A retry due, by the session's log. */
interface DueRetry {
  taskId: string;
  attempt: number;
  dueAt: number;
}

/**
 * The wait before sending a RetryDue again after its `failures`-th failure in a row with `err`. A
 * log that cannot be read or an input refused will fail the same way until someone intervenes:
 * waits double from 2 s up to a minute rather than flood the log every second. Anything else (the
 * store briefly away) is tried again a second later.
 */
function retryAgainAfterMs(err: unknown, failures: number): number {
  if (!isCorruptLogError(err) && !isValidationError(err)) return RETRY_AGAIN_MS;
  return Math.min(MAX_RETRY_AGAIN_MS, RETRY_AGAIN_MS * 2 ** failures);
}

/**
 * Turns TaskRetryScheduled into a RetryDue input when it falls due. The due time is in the log,
 * not in an xstate delay, so a restarted runtime re-arms it from state (`watch`) and a timer that
 * fires twice is harmless: its message id is the same, and the session's inbox drops the second.
 */
export class RetryScheduler {
  private readonly armed = new Map<string, ArmedRetry>();
  /**
   * The newest state watched, by session (its run and version): an older state must not undo a
   * newer one. A run of its own: a session id reused after a purge starts again at version 1.
   */
  private readonly seen = new RecentMap<string, { runId: string | null; version: number }>(100_000);
  private closed = false;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly planner: Planner,
    private readonly clock: () => number,
    private readonly logger: Logger,
    private readonly timers: Timers = realTimers,
  ) {
    const offCommit = planner.onCommit(({ state }) => this.watch(state));
    // An append that landed but reported an error is never committed: its redelivery finds it.
    const offReissue = planner.onReissue((state) => this.watch(state));
    this.unsubscribe = () => {
      offCommit();
      offReissue();
    };
  }

  /** Arms, re-arms or disarms the session's retry timer to match its state. */
  watch(state: SessionState): void {
    // A recovery that read the session before a newer commit (it runs beside the consumer when
    // deferred) would otherwise clear the timer that commit armed.
    const runId = state.snapshot.context.runId;
    const seen = this.seen.get(state.sessionId);
    if (seen !== undefined && seen.runId === runId && state.version < seen.version) return;
    this.seen.set(state.sessionId, { runId, version: state.version });
    const retry = outstanding(state).retry;
    const current = this.armed.get(state.sessionId);
    // The dispatch id of the attempt it is due for: unique across runs of the session id too.
    const key = retry ? dispatchIdFor(state.sessionId, retry.taskId, retry.attempt, state.snapshot.context.runId) : '';
    if (current?.key === key) return;
    if (current?.handle !== undefined) this.timers.clear(current.handle);
    this.armed.delete(state.sessionId);
    if (!retry || this.closed) return;
    const entry: ArmedRetry = { key, handle: undefined };
    this.armed.set(state.sessionId, entry);
    this.arm(state.sessionId, entry, retry, 0);
  }

  /** Sets the entry's timer for `retry.dueAt`; `failures` counts its failed RetryDues in a row. */
  private arm(sessionId: string, entry: ArmedRetry, retry: DueRetry, failures: number): void {
    // A longer delay would fire at once (Node's limit): arm the longest and re-arm when it fires.
    const delay = Math.min(MAX_TIMER_MS, retry.dueAt - this.clock());
    entry.handle = this.timers.set(delay, () => {
      entry.handle = undefined;
      // Superseded or closed (a timer cleared too late to stop its callback): not ours to send.
      if (this.armed.get(sessionId) !== entry) return;
      // Node timers may fire a few ms before the wall clock reaches the due time (they count
      // from the loop's cached time), and a capped wait fires long before it; an early RetryDue
      // would change nothing, so wait the rest.
      if (this.clock() < retry.dueAt) return this.arm(sessionId, entry, retry, failures);
      this.send(sessionId, entry, retry, failures);
    });
  }

  /**
   * Feeds the RetryDue to the planner. The entry stays in `armed` meanwhile, with no timer: a
   * commit that changes the session's retry replaces it, and only a failure of the entry still
   * armed is tried again, so a retry a newer state armed (or close() cleared) is never overwritten.
   */
  private send(sessionId: string, entry: ArmedRetry, retry: DueRetry, failures: number): void {
    const input = { type: 'RetryDue' as const, taskId: retry.taskId, attempt: retry.attempt };
    this.planner.handle(sessionId, input, { messageId: `retry.${entry.key}` }).then(
      // Applied without a commit that moved the session on (a duplicate): a later watch re-arms.
      () => {
        if (this.armed.get(sessionId) === entry) this.armed.delete(sessionId);
      },
      (err: unknown) => {
        if (this.armed.get(sessionId) !== entry) return;
        const waitMs = retryAgainAfterMs(err, failures + 1);
        // The store may be briefly unavailable: try again rather than leave the session in backoff.
        this.logger.error({ sessionId, err, failures: failures + 1, retryInMs: waitMs }, 'retry failed; trying again');
        this.arm(sessionId, entry, { ...retry, dueAt: this.clock() + waitMs }, failures + 1);
      },
    );
  }

  /** Clears every timer; nothing armed before fires afterwards, nor is a failed RetryDue tried again. */
  close(): void {
    this.closed = true;
    this.unsubscribe();
    for (const { handle } of this.armed.values()) if (handle !== undefined) this.timers.clear(handle);
    this.armed.clear();
  }
}
