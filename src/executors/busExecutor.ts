import { setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { ExecuteTask } from '../protocol/commands.js';
import type { Backoff } from '../protocol/domain.js';
import type { Subjects } from '../protocol/subjects.js';
import type { Inbox } from '../persistence/inbox.js';
import { HEADER, NoRouteError, type Bus, type BusMessage } from '../actors/bus.js';
import { checkSharedOptions, type ExecutorKind } from './executorChecks.js';
import { DEFAULT_MAX_REPORT_BYTES, fitReport } from './fitReport.js';
import { checkedReport, runHandler, type ExecutorReport, type TaskHandler } from './report.js';

/** Options of {@link startBusExecutor}. */
export interface BusExecutorOptions {
  bus: Bus;
  subjects: Subjects;
  handler: TaskHandler;
  /** Reports by dispatch id: a redelivered command is answered from here, never run again. */
  inbox: Inbox<ExecutorReport>;
  logger: Logger;
  /** Kinds this executor takes (default both); at least one, each ToolCall or Processing. */
  kinds?: ExecutorKind[];
  /** Waits between attempts to deliver a report the session did not take (default 50 ms doubling up to 5 s). */
  reportBackoff?: Backoff;
  /**
   * Largest report body, in UTF-8 bytes of its JSON (default DEFAULT_MAX_REPORT_BYTES, the
   * planner's MAX_INPUT_BYTES). A longer output, error or question is cut to fit, with a marker
   * saying how much was kept: a report over the planner's limit would be refused for good. An
   * integer of at least 1024 (ValidationError otherwise).
   */
  maxReportBytes?: number;
}

const REPORT_BACKOFF: Backoff = { baseMs: 50, factor: 2, maxMs: 5_000 };

/** What one executor shares between deliveries. */
interface ExecutorState {
  signal: AbortSignal;
  /**
   * Reports being produced, by dispatch id: a copy delivered meanwhile waits for the same one.
   * None: the task's session ended while it ran, and nothing is reported.
   */
  producing: Map<string, Promise<ExecutorReport | undefined>>;
  /** Dispatch ids whose report failed and is being retried: a copy delivered meanwhile leaves it to that. */
  retrying: Set<string>;
  /**
   * Reports made whose recording failed (a full disk), by dispatch id: the redelivered command
   * records this one rather than run the task again.
   */
  unrecorded: Map<string, ExecutorReport>;
  track: (work: Promise<void>) => Promise<void>;
}

/**
 * The executor stopped while a dispatch ran and the handler failed (most likely because it was
 * aborted): nothing is recorded or reported, and the delivery is refused, so the dispatch stays
 * open and a restart (`resume`, recovery) issues it again instead of counting a lost attempt.
 */
export class ExecutorStoppedError extends Error {
  override readonly name = 'ExecutorStoppedError';
}

export const isExecutorStoppedError = (e: unknown): e is ExecutorStoppedError =>
  e instanceof Error && e.name === 'ExecutorStoppedError';

/**
 * Runs executors on the in-process bus: takes ExecuteTask commands, runs the handler once per
 * dispatch id (the report, fitted to `maxReportBytes`, is recorded durably in the inbox before it
 * is sent), and publishes the report into the session, retrying with backoff until the session
 * takes it or its runtime is closed. Returns a stop function that aborts work under way and waits
 * for it; a dispatch that fails once stopping began is left open (see ExecutorStoppedError), and so
 * is one whose report is still undelivered. Throws ValidationError for a bad `handler`, `kinds` or
 * `maxReportBytes`, as createExecutor does, before subscribing to anything.
 */
export function startBusExecutor(o: BusExecutorOptions): () => Promise<void> {
  const kinds = checkSharedOptions({ handler: o.handler, kinds: o.kinds ?? ['ToolCall', 'Processing'], maxReportBytes: o.maxReportBytes, logger: o.logger });
  const running = new Set<Promise<void>>();
  const track = (work: Promise<void>) => {
    running.add(work);
    // Not `void work.finally(...)`: that promise rejects with the work and would go unhandled.
    const done = () => running.delete(work);
    work.then(done, done);
    return work;
  };
  const controller = new AbortController();
  setMaxListeners(0, controller.signal); // one listener per task under way, each removed after it
  const state: ExecutorState = { signal: controller.signal, producing: new Map(), retrying: new Set(), unrecorded: new Map(), track };
  const unsubscribe = kinds.map((kind) => o.bus.subscribe(o.subjects.exec(kind, '*'), (message) => track(handle(o, message, state))));
  return async () => {
    for (const off of unsubscribe) off();
    controller.abort();
    // Twice: work under way may still hand its report to the bus.
    await Promise.allSettled(running);
    await Promise.allSettled(running);
  };
}

async function handle(o: BusExecutorOptions, message: BusMessage, x: ExecutorState): Promise<void> {
  const task = ExecuteTask.parse(message.data);
  let work = x.producing.get(task.dispatchId);
  if (!work) {
    work = reportFor(o, task, x);
    x.producing.set(task.dispatchId, work);
    const forget = () => x.producing.delete(task.dispatchId);
    work.then(forget, forget);
  }
  const report = await work;
  if (!report) return; // the session ended: the command is taken, and nobody waits for a report
  // Delivered in the background: the command is taken once its report is recorded, and the
  // report's own delivery must not hold up the bus that delivered the command. Tracked, so
  // stopping the executor waits for it.
  if (x.retrying.has(task.dispatchId)) return;
  const headers = {
    [HEADER.type]: report.type,
    [HEADER.messageId]: `report.${task.dispatchId}`,
    [HEADER.causationId]: message.headers[HEADER.messageId] ?? task.dispatchId,
    [HEADER.correlationId]: message.headers[HEADER.correlationId] ?? task.sessionId,
  };
  void x.track(deliverReport(o, task, report, headers, x));
}

const PLANNER_GONE = 'report not delivered: no planner takes inputs on this bus (its runtime is closed); it stays in the inbox for the next run';

/**
 * Whether a failed publish can never succeed on this bus: nobody subscribes to the session's
 * inputs. The planner subscribes to them for as long as its runtime lives (and the runtime's bus
 * lives no longer), so no subscriber means the runtime was closed; retrying would spin forever.
 */
const plannerGone = (err: unknown): boolean => err instanceof NoRouteError;

/**
 * Publishes the report until the session takes it. The command that asked for it is already
 * marked delivered, so nobody would send it again: one lost report would leave the task Running
 * for good. Gives up only when the executor stops or the planner has left the bus (its runtime
 * closed); the report stays in the inbox, and the dispatch, still open in the session, is issued
 * again on recovery and answered from there.
 */
async function deliverReport(
  o: BusExecutorOptions,
  task: ExecuteTask,
  report: ExecutorReport,
  headers: Record<string, string>,
  x: ExecutorState,
): Promise<void> {
  const { baseMs, factor, maxMs } = o.reportBackoff ?? REPORT_BACKOFF;
  const id = task.dispatchId;
  let retrying = false;
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        await o.bus.publish(o.subjects.input(task.sessionId), report, headers);
        return;
      } catch (err) {
        if (plannerGone(err)) {
          o.logger.error({ err, dispatchId: id, attempt }, PLANNER_GONE);
          return;
        }
        const delayMs = Math.min(maxMs, baseMs * factor ** (attempt - 1));
        o.logger.error({ err, dispatchId: id, attempt, delayMs, stopping: x.signal.aborted }, 'report not delivered');
        if (x.signal.aborted) return;
        // Only now: redeliveries while one attempt is under way still each send the report, but
        // one retry loop per dispatch is enough once sending fails.
        if (!retrying && x.retrying.has(id)) return;
        retrying = true;
        x.retrying.add(id);
        // The abort ends the wait early (a rejection); the check below then ends the loop. Unref'd:
        // a report waiting for its next try must not keep the process alive (it is in the inbox).
        await sleep(delayMs, undefined, { signal: x.signal, ref: false }).catch(() => undefined);
        if (x.signal.aborted) return;
      }
    }
  } finally {
    if (retrying) x.retrying.delete(id);
  }
}

/** The events that end a session: a task of it still running is aborted. */
const SESSION_ENDS = new Set(['SessionCancelled', 'SessionFailed', 'SessionCompleted']);

/**
 * Runs the handler with a signal aborted when the executor stops or when the task's session ends
 * while it runs (its events on the bus, `<prefix>.ev.<sessionId>`); `ended` names the event.
 */
async function runUntilEnded(o: BusExecutorOptions, task: ExecuteTask, stopping: AbortSignal) {
  const run = new AbortController();
  const onStop = () => run.abort(stopping.reason);
  stopping.addEventListener('abort', onStop, { once: true });
  if (stopping.aborted) onStop();
  let ended: string | undefined;
  const unwatch = o.bus.subscribe(o.subjects.events(task.sessionId), (message) => {
    const type = message.headers[HEADER.type];
    if (ended !== undefined || type === undefined || !SESSION_ENDS.has(type)) return;
    ended = type;
    run.abort(new Error(`session ended (${type})`));
  });
  try {
    const outcome = await runHandler(o.handler, task, run.signal);
    return { outcome, ended };
  } finally {
    unwatch();
    stopping.removeEventListener('abort', onStop);
  }
}

/**
 * The dispatch's report: recorded in the inbox, or produced by the handler once and recorded; none
 * if the task's session ended while it ran (nothing is recorded: a session that has ended waits for
 * no report, and would reject one).
 */
async function reportFor(o: BusExecutorOptions, task: ExecuteTask, x: ExecutorState): Promise<ExecutorReport | undefined> {
  const { signal } = x;
  const maxBytes = o.maxReportBytes ?? DEFAULT_MAX_REPORT_BYTES;
  const made = x.unrecorded.get(task.dispatchId);
  if (made) return record(o, task, made, x);
  const recorded = await o.inbox.get(task.dispatchId);
  if (recorded) {
    o.logger.debug({ sessionId: task.sessionId, taskId: task.taskId, dispatchId: task.dispatchId }, 'duplicate command; re-sending the recorded report');
    // Fitted again: it may have been recorded before reports were fitted, or under a larger limit.
    return fitReport(recorded, maxBytes);
  }
  const { outcome, ended } = await runUntilEnded(o, task, signal);
  if (ended !== undefined) {
    o.logger.info({ sessionId: task.sessionId, taskId: task.taskId, dispatchId: task.dispatchId, ended }, 'handler aborted as its session ended; nothing reported');
    return undefined;
  }
  // A handler that gave up on the shutdown's abort (threw, or returned a failure marked `aborted`)
  // did not do the task: recording that would cost it an attempt (or fail the session) for a
  // Ctrl-C. Work that completed is kept, and so is a failure of the task's own: run again, its
  // command would be executed twice.
  if (signal.aborted && outcome.type === 'failed' && outcome.aborted === true) {
    o.logger.debug({ sessionId: task.sessionId, taskId: task.taskId, dispatchId: task.dispatchId }, 'stopped mid-task; dispatch left open');
    throw new ExecutorStoppedError(`executor stopped before ${task.dispatchId} finished; it stays open`);
  }
  // Fitted before it is recorded, so a redelivery re-sends the very report the planner took.
  return record(o, task, checkedReport(task, outcome, maxBytes), x);
}

/** Records a report made for `task`; if that fails, it is kept to be recorded at the redelivery. */
async function record(o: BusExecutorOptions, task: ExecuteTask, report: ExecutorReport, x: ExecutorState): Promise<ExecutorReport> {
  try {
    await o.inbox.put(task.dispatchId, report);
  } catch (err) {
    // The task is done: running it again for a failed write would execute it twice.
    x.unrecorded.set(task.dispatchId, report);
    o.logger.error({ err, dispatchId: task.dispatchId }, 'report not recorded; recorded at the redelivery, the task not run again');
    throw err;
  }
  x.unrecorded.delete(task.dispatchId);
  return report;
}
