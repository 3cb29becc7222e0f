import type { Logger } from 'pino';
import { ExecuteTask } from '../protocol/commands.js';
import type { Subjects } from '../protocol/subjects.js';
import type { Inbox } from '../persistence/inbox.js';
import { HEADER, type Bus, type BusMessage } from '../actors/bus.js';
import { checkedReport, runHandler, type ExecutorReport, type TaskHandler } from './report.js';

/** Options of {@link startBusExecutor}. */
export interface BusExecutorOptions {
  bus: Bus;
  subjects: Subjects;
  handler: TaskHandler;
  /** Reports by dispatch id: a redelivered command is answered from here, never run again. */
  inbox: Inbox<ExecutorReport>;
  logger: Logger;
  /** Kinds this executor takes (default both). */
  kinds?: Array<'ToolCall' | 'Processing'>;
}

/**
 * The executor stopped while a dispatch ran and the handler failed (most likely because it was
 * aborted): nothing is recorded or reported, and the delivery is refused, so the dispatch stays
 * open and a restart (`resume`, recovery) issues it again instead of counting a lost attempt.
 */
export class ExecutorStoppedError extends Error {
  override readonly name = 'ExecutorStoppedError';
}

/**
 * Runs executors on the in-process bus: takes ExecuteTask commands, runs the handler once per
 * dispatch id (the report is recorded durably in the inbox before it is sent), and publishes the
 * report into the session. Returns a stop function that aborts work under way and waits for it;
 * a dispatch that fails once stopping began is left open (see ExecutorStoppedError).
 */
export function startBusExecutor(o: BusExecutorOptions): () => Promise<void> {
  const running = new Set<Promise<void>>();
  const track = (work: Promise<void>) => {
    running.add(work);
    // Not `void work.finally(...)`: that promise rejects with the work and would go unhandled.
    const done = () => running.delete(work);
    work.then(done, done);
    return work;
  };
  /** Reports being produced, by dispatch id: a copy delivered meanwhile waits for the same one. */
  const producing = new Map<string, Promise<ExecutorReport>>();
  const controller = new AbortController();
  const kinds = o.kinds ?? ['ToolCall', 'Processing'];
  const unsubscribe = kinds.map((kind) =>
    o.bus.subscribe(o.subjects.exec(kind, '*'), (message) => track(handle(o, message, controller.signal, producing, track))),
  );
  return async () => {
    for (const off of unsubscribe) off();
    controller.abort();
    // Twice: work under way may still hand its report to the bus.
    await Promise.allSettled(running);
    await Promise.allSettled(running);
  };
}

async function handle(
  o: BusExecutorOptions,
  message: BusMessage,
  signal: AbortSignal,
  producing: Map<string, Promise<ExecutorReport>>,
  track: (work: Promise<void>) => Promise<void>,
): Promise<void> {
  const task = ExecuteTask.parse(message.data);
  let work = producing.get(task.dispatchId);
  if (!work) {
    work = reportFor(o, task, signal);
    producing.set(task.dispatchId, work);
    const forget = () => producing.delete(task.dispatchId);
    work.then(forget, forget);
  }
  const report = await work;
  // Delivered in the background: the command is taken once its report is recorded, and the
  // report's own delivery must not hold up the bus that delivered the command. Tracked, so
  // stopping the executor waits for it.
  void track(o.bus
    .publish(o.subjects.input(task.sessionId), report, {
      [HEADER.type]: report.type,
      [HEADER.messageId]: `report.${task.dispatchId}`,
      [HEADER.causationId]: message.headers[HEADER.messageId] ?? task.dispatchId,
      [HEADER.correlationId]: message.headers[HEADER.correlationId] ?? task.sessionId,
    })
    .catch((err: unknown) => o.logger.error({ err, dispatchId: task.dispatchId }, 'report not delivered')));
}

/** The dispatch's report: recorded in the inbox, or produced by the handler once and recorded. */
async function reportFor(o: BusExecutorOptions, task: ExecuteTask, signal: AbortSignal): Promise<ExecutorReport> {
  const recorded = await o.inbox.get(task.dispatchId);
  if (recorded) {
    o.logger.debug({ sessionId: task.sessionId, taskId: task.taskId, dispatchId: task.dispatchId }, 'duplicate command; re-sending the recorded report');
    return recorded;
  }
  const outcome = await runHandler(o.handler, task, signal);
  // A failure during shutdown is the abort's doing, not the task's: recording it would cost the
  // task an attempt (or fail the session) for a Ctrl-C. Work that completed is kept, though.
  if (signal.aborted && outcome.type === 'failed') {
    o.logger.debug({ sessionId: task.sessionId, taskId: task.taskId, dispatchId: task.dispatchId }, 'stopped mid-task; dispatch left open');
    throw new ExecutorStoppedError(`executor stopped before ${task.dispatchId} finished; it stays open`);
  }
  const report = checkedReport(task, outcome);
  await o.inbox.put(task.dispatchId, report);
  return report;
}
