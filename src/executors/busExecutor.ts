import type { Logger } from 'pino';
import { ExecuteTask } from '../protocol/commands.js';
import type { Subjects } from '../protocol/subjects.js';
import type { Inbox } from '../persistence/inbox.js';
import { HEADER, type Bus, type BusMessage } from '../actors/bus.js';
import { toReport, type ExecutorReport, type TaskHandler } from './report.js';

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
 * Runs executors on the in-process bus: takes ExecuteTask commands, runs the handler once per
 * dispatch id (the report is recorded durably in the inbox before it is sent), and publishes the
 * report into the session. Returns a stop function that waits for work under way.
 */
export function startBusExecutor(o: BusExecutorOptions): () => Promise<void> {
  const running = new Set<Promise<void>>();
  const controller = new AbortController();
  const kinds = o.kinds ?? ['ToolCall', 'Processing'];
  const unsubscribe = kinds.map((kind) =>
    o.bus.subscribe(o.subjects.exec(kind, '*'), (message) => {
      const work = handle(o, message, controller.signal);
      running.add(work);
      void work.finally(() => running.delete(work));
      return work;
    }),
  );
  return async () => {
    for (const off of unsubscribe) off();
    controller.abort();
    await Promise.allSettled(running);
  };
}

async function handle(o: BusExecutorOptions, message: BusMessage, signal: AbortSignal): Promise<void> {
  const task = ExecuteTask.parse(message.data);
  let report = await o.inbox.get(task.dispatchId);
  if (report) {
    o.logger.debug({ sessionId: task.sessionId, taskId: task.taskId, dispatchId: task.dispatchId }, 'duplicate command; re-sending the recorded report');
  } else {
    const outcome = await o.handler(task, { signal, idempotencyKey: task.dispatchId });
    report = toReport(task, outcome);
    await o.inbox.put(task.dispatchId, report);
  }
  // Delivered in the background: the command is taken once its report is recorded, and the
  // report's own delivery must not hold up the bus that delivered the command.
  void o.bus
    .publish(o.subjects.input(task.sessionId), report, {
      [HEADER.type]: report.type,
      [HEADER.messageId]: `report.${task.dispatchId}`,
      [HEADER.causationId]: message.headers[HEADER.messageId] ?? task.dispatchId,
      [HEADER.correlationId]: message.headers[HEADER.correlationId] ?? task.sessionId,
    })
    .catch((err: unknown) => o.logger.error({ err, dispatchId: task.dispatchId }, 'report not delivered'));
}
