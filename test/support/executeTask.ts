import type { ExecuteTask } from '../../src/protocol/commands.js';

/** An ExecuteTask for task t1 of session s1, attempt 1, with `over` applied. */
export function executeTask(over: Partial<ExecuteTask> = {}): ExecuteTask {
  return {
    type: 'ExecuteTask',
    sessionId: 's1',
    taskId: 't1',
    dispatchId: 's1.t1.1',
    attempt: 1,
    kind: 'ToolCall',
    description: 'Fetch',
    attachments: [],
    context: '',
    ...over,
  };
}
