import { decide } from '../src/machines/decide.js';
import { currentTask } from '../src/machines/sessionQueries.js';
import { initialSessionState } from '../src/machines/sessionState.js';
import type { DomainEvent } from '../src/protocol/events.js';
import { defaultDecideDeps } from '../src/runtime/embeddedRuntime.js';

/**
 * The first `count` events of one realistic session, made by the decider: inputs of 200 tasks
 * (planText's limit per input) submitted up front, then each task dispatched and completed in
 * turn, with the compactions that causes. Any prefix of a log is a valid log.
 */
export function sessionLog(sessionId: string, count: number): DomainEvent[] {
  const deps = defaultDecideDeps();
  let n = 0;
  const meta = () => ({ messageId: `${sessionId}-m${++n}`, now: 1_000 + n });
  let state = initialSessionState(sessionId);
  const log: DomainEvent[] = [];
  const apply = (input: Parameters<typeof decide>[1]) => {
    const d = decide(state, input, meta(), deps);
    log.push(...d.events);
    state = d.state;
  };
  // At least 2 events per task (dispatched, completed; now and then compacted): enough tasks.
  for (let part = 0; part * 200 * 2 < count + 200; part++) {
    apply({ type: 'SubmitInput', text: Array.from({ length: 200 }, (_, i) => `Process item ${part * 200 + i + 1}.`).join(' ') });
  }
  for (let task = currentTask(state); task?.status === 'Running' && log.length < count; task = currentTask(state)) {
    apply({ type: 'TaskCompleted', taskId: task.id, dispatchId: task.dispatchId!, output: `item ${task.id} processed` });
  }
  if (log.length < count) throw new Error(`sessionLog: made ${log.length} events, wanted ${count}`);
  return log.slice(0, count);
}
