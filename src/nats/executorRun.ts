/**
 * Running one dispatch's handler under its claim (see executorClaims.ts). The claim is refreshed
 * every ackWait/3 from before the handler starts until its report is recorded. The handler's
 * signal is aborted when the executor stops, when the claim is definitively lost (another process
 * may now run the dispatch: a lost claim's outcome is never recorded nor reported), or when the
 * task's session ends while it runs (cancelled, failed: nothing waits for the outcome any more).
 */
import type { Logger } from 'pino';
import type { ExecuteTask } from '../protocol/commands.js';
import { checkedReport, runHandler, type ExecutorReport, type HandlerOutcome, type TaskHandler } from '../executors/report.js';
import { ClaimLostError, type Claim, type KvClaims } from './executorClaims.js';
import type { KvExecutorInbox } from './executorInbox.js';

/** What came of a claimed run. */
export type ClaimedRun =
  /** Another process holds the dispatch's claim: wait for its report. */
  | { type: 'busy' }
  /** A report to publish: recorded earlier by another holder, or made now by the handler. */
  | { type: 'report'; report: ExecutorReport; ran: boolean; recorded: boolean }
  /**
   * The handler's outcome must not be reported: hand the command back, unless its session has
   * ended or moved on from the dispatch (then nothing is to be done with it; `ran` false when
   * that was known before the handler started).
   */
  | { type: 'abandoned'; reason: 'claim lost' | 'stopped' | 'session ended'; ran: boolean };

/** What runClaimed works with: the executor's buckets, handler and identity. */
export interface ClaimedRunContext {
  /** Largest report body in bytes (default MAX_INPUT_BYTES): see ExecutorOptions.maxReportBytes. */
  maxReportBytes?: number | undefined;
  claims: KvClaims;
  inbox: KvExecutorInbox;
  handler: TaskHandler;
  owner: string;
  /** Claim refresh period: ackWait/3. */
  refreshMs: number;
  /** Aborted when the executor stops. */
  stopping: AbortSignal;
  logger: Logger;
  /** Tries at recording a report before giving up (default 4). */
  recordAttempts?: number;
  /**
   * Calls `onEnded` with the session's final event type if the session ends while its task runs
   * (best effort: an end before the watch began goes unnoticed); returns the unwatch function.
   */
  watchSession?: (sessionId: string, onEnded: (eventType: string) => void) => () => void;
  /**
   * Whether the session has moved on from this dispatch (ended, or waits on something else), asked
   * once the session is watched and before the handler starts: then the handler never runs.
   */
  movedOn?: () => Promise<boolean>;
}

/**
 * Refreshes a claim every `refreshMs`. The claim is lost when a refresh finds it changed by someone
 * else, or when refreshes have failed (a KV outage) for so long that the next one would come after
 * the claim's TTL: either way another process may take it, so the handler is to be aborted.
 */
class ClaimKeeper {
  #timer: NodeJS.Timeout;
  #lastRefreshed = Date.now();
  #busy = false;
  lost = false;

  /** `onFailure` hears of each failed refresh, with `lost` true for the one that loses the claim. */
  constructor(claim: Claim, refreshMs: number, ttlMs: number, onFailure: (err: unknown, lost: boolean) => void) {
    const lose = (err: unknown): void => {
      if (this.lost) return;
      this.lost = true;
      clearInterval(this.#timer);
      onFailure(err, true);
    };
    this.#timer = setInterval(() => {
      if (this.lost) return;
      // Judged on every tick, a refresh under way or not: one that hangs (a partition, each try
      // waiting out its timeout) must not let the claim expire on the server, and another process
      // take the dispatch, before this handler is aborted.
      if (Date.now() + refreshMs - this.#lastRefreshed >= ttlMs) return lose(new Error(`claim not refreshed for ${Date.now() - this.#lastRefreshed} ms; it may expire before the next try`));
      if (this.#busy) return; // a slow refresh is not doubled up
      this.#busy = true;
      claim
        .refresh()
        .then(() => (this.#lastRefreshed = Date.now()))
        .catch((err: unknown) => {
          if (err instanceof ClaimLostError || Date.now() + refreshMs - this.#lastRefreshed >= ttlMs) lose(err);
          else onFailure(err, false);
        })
        .finally(() => (this.#busy = false));
    }, refreshMs);
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

/** Runs the handler for `task` unless another process holds its claim; see ClaimedRun. */
export async function runClaimed(task: ExecuteTask, ctx: ClaimedRunContext, log: object): Promise<ClaimedRun> {
  const claim = await ctx.claims.take(task.dispatchId, ctx.owner);
  if (!claim) return { type: 'busy' };
  const abort = new AbortController();
  const onStop = (): void => abort.abort(new Error('executor stopping'));
  ctx.stopping.addEventListener('abort', onStop, { once: true });
  if (ctx.stopping.aborted) onStop();
  const keeper = new ClaimKeeper(claim, ctx.refreshMs, ctx.claims.ttlMs, (err, lost) => {
    if (!lost) return ctx.logger.warn({ ...log, err }, 'claim not refreshed; trying again');
    ctx.logger.warn({ ...log, err }, 'claim lost; aborting the handler, its outcome will not be reported');
    abort.abort(err);
  });
  let ended: string | undefined;
  let unwatch: (() => void) | undefined;
  let keepClaim = false;
  try {
    // Inside the try: a subscribe refused (the connection closing) must still release the claim.
    unwatch = ctx.watchSession?.(task.sessionId, (eventType) => {
      ended = eventType;
      ctx.logger.info({ ...log, ended: eventType }, 'session ended; aborting the handler');
      abort.abort(new Error(`session ended (${eventType})`));
    });
    // The holder of a claim released just now may have recorded the report meanwhile.
    const earlier = await ctx.inbox.get(task.dispatchId);
    if (earlier) return { type: 'report', report: earlier, ran: false, recorded: true };
    // The watch may see the end while the read is under way (a read from before it): asked again after.
    const sessionEnded = (): boolean => ended !== undefined;
    if (sessionEnded() || (await ctx.movedOn?.()) || sessionEnded()) return { type: 'abandoned', reason: 'session ended', ran: false };
    // Stopped while the claim was taken and the inbox read: a stopped executor starts nothing.
    if (ctx.stopping.aborted) return { type: 'abandoned', reason: 'stopped', ran: false };
    const { outcome, threw } = await runWatched(ctx.handler, task, abort.signal);
    if (keeper.lost) return { type: 'abandoned', reason: 'claim lost', ran: true };
    // Whatever the handler made of it: the session takes no more reports (it would reject them).
    if (ended !== undefined) return { type: 'abandoned', reason: 'session ended', ran: true };
    // A handler that gave up on its abort (threw, or returned a failure marked `aborted`, as the
    // shell handler does for a killed command) did not do the task: another executor will, at no
    // attempt's cost. Any other outcome, a failure of its own included, is the task's: reported.
    if (abort.signal.aborted && (threw || (outcome.type === 'failed' && outcome.aborted === true))) {
      return { type: 'abandoned', reason: 'stopped', ran: true };
    }
    const report = checkedReport(task, outcome, ctx.maxReportBytes);
    const put = () => ctx.inbox.put(task.dispatchId, report);
    const recorded = await recordReport(put, ctx.recordAttempts ?? 4, Math.min(ctx.refreshMs, 1_000), (err, attempt) =>
      ctx.logger.warn({ ...log, err, attempt }, 'report not recorded'),
    );
    // Unrecorded, a redelivery could run the task again: keep the claim so that it waits out its TTL.
    keepClaim = !recorded;
    return { type: 'report', report, ran: true, recorded };
  } finally {
    unwatch?.();
    keeper.stop();
    ctx.stopping.removeEventListener('abort', onStop);
    if (!keepClaim && !keeper.lost) await claim.release().catch(() => undefined);
  }
}

/** Runs the handler (see runHandler), telling whether it threw rather than returned an outcome. */
async function runWatched(handler: TaskHandler, task: ExecuteTask, signal: AbortSignal): Promise<{ outcome: HandlerOutcome; threw: boolean }> {
  let threw = false;
  const watched: TaskHandler = async (t, tools) => {
    try {
      return await handler(t, tools);
    } catch (err) {
      threw = true;
      throw err;
    }
  };
  const outcome = await runHandler(watched, task, signal);
  return { outcome, threw };
}

/**
 * Calls `put` up to `attempts` times, pausing `pauseMs` x attempt between tries; resolves whether it
 * succeeded. A KV timeout is often brief, and each failure here risks running the task again.
 */
export async function recordReport(
  put: () => Promise<void>,
  attempts: number,
  pauseMs: number,
  onFailure: (err: unknown, attempt: number) => void,
): Promise<boolean> {
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      await put();
      return true;
    } catch (err) {
      onFailure(err, attempt);
      if (attempt < attempts) await new Promise((r) => setTimeout(r, pauseMs * attempt));
    }
  }
  return false;
}
