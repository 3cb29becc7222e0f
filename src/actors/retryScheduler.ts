import type { Logger } from 'pino';
import { outstanding } from '../machines/sessionQueries.js';
import type { SessionState } from '../machines/sessionState.js';
import type { Planner } from './planner.js';
import { MAX_TIMER_MS, realTimers, type Timers } from './timers.js';
import { RecentMap } from '../shared/recentMap.js';

/** How long to wait before sending a RetryDue again after the planner failed to apply it. */
const RETRY_AGAIN_MS = 1_000;

/**
 * Turns TaskRetryScheduled into a RetryDue input when it falls due. The due time is in the log,
 * not in an xstate delay, so a restarted runtime re-arms it from state (`watch`) and a timer that
 * fires twice is harmless: its message id is the same, and the session's inbox drops the second.
 */
export class RetryScheduler {
  private readonly armed = new Map<string, { key: string; handle: unknown }>();
  /** The newest session version watched, by session: an older state must not undo a newer one. */
  private readonly seen = new RecentMap<string, number>(100_000);
  private closed = false;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly planner: Planner,
    private readonly clock: () => number,
    private readonly logger: Logger,
    private readonly timers: Timers = realTimers,
  ) {
    this.unsubscribe = planner.onCommit(({ state }) => this.watch(state));
  }

  /** Arms, re-arms or disarms the session's retry timer to match its state. */
  watch(state: SessionState): void {
    // A recovery that read the session before a newer commit (it runs beside the consumer when
    // deferred) would otherwise clear the timer that commit armed.
    if (state.version < (this.seen.get(state.sessionId) ?? 0)) return;
    this.seen.set(state.sessionId, state.version);
    const retry = outstanding(state).retry;
    const current = this.armed.get(state.sessionId);
    const key = retry ? `${retry.taskId}.${retry.attempt}` : '';
    if (current?.key === key) return;
    if (current) this.timers.clear(current.handle);
    this.armed.delete(state.sessionId);
    if (!retry || this.closed) return;
    this.arm(state.sessionId, key, retry);
  }

  private arm(sessionId: string, key: string, retry: { taskId: string; attempt: number; dueAt: number }): void {
    // A longer delay would fire at once (Node's limit): arm the longest and re-arm when it fires.
    const delay = Math.min(MAX_TIMER_MS, retry.dueAt - this.clock());
    const handle = this.timers.set(delay, () => {
      // Node timers may fire a few ms before the wall clock reaches the due time (they count
      // from the loop's cached time), and a capped wait fires long before it; an early RetryDue
      // would change nothing, so wait the rest.
      if (this.clock() < retry.dueAt) return this.arm(sessionId, key, retry);
      this.armed.delete(sessionId);
      const input = { type: 'RetryDue' as const, taskId: retry.taskId, attempt: retry.attempt };
      this.planner.handle(sessionId, input, { messageId: `retry.${sessionId}.${key}` }).catch((err: unknown) => {
        // The store may be briefly unavailable: try again rather than leave the session in backoff.
        this.logger.error({ sessionId, err }, 'retry failed; trying again');
        if (!this.closed) this.arm(sessionId, key, { ...retry, dueAt: this.clock() + RETRY_AGAIN_MS });
      });
    });
    this.armed.set(sessionId, { key, handle });
  }

  close(): void {
    this.closed = true;
    this.unsubscribe();
    for (const { handle } of this.armed.values()) this.timers.clear(handle);
    this.armed.clear();
  }
}
