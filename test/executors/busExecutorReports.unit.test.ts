import { describe, expect, it, vi } from 'vitest';
import { HEADER, type BusMessage } from '../../src/actors/bus.js';
import { InProcessBus } from '../../src/actors/inProcessBus.js';
import { startBusExecutor } from '../../src/executors/busExecutor.js';
import type { ExecutorReport, TaskHandler } from '../../src/executors/report.js';
import { silentLogger } from '../../src/observability/logger.js';
import { MemoryInbox } from '../../src/persistence/inbox.js';
import { subjectsFor } from '../../src/protocol/subjects.js';
import { executeTask } from '../support/executeTask.js';

const subjects = subjectsFor();
const task = executeTask();
const publishTask = (bus: InProcessBus) => bus.publish(subjects.exec('ToolCall', 's1'), task, { [HEADER.messageId]: 'cmd-1' });

/** An executor whose session refuses reports while `refuse()` says so. */
function setup(refuse: (attempt: number) => boolean) {
  const bus = new InProcessBus();
  const attempts: BusMessage[] = [];
  const taken: BusMessage[] = [];
  bus.subscribe(subjects.allInputs, (m) => {
    attempts.push(m);
    if (refuse(attempts.length)) throw new Error('append failed');
    taken.push(m);
  });
  const handler = vi.fn<TaskHandler>(async () => ({ type: 'completed', output: 'done' }));
  const logger = { debug: vi.fn(), info: vi.fn(), warn: vi.fn(), error: vi.fn() } as unknown as typeof silentLogger;
  const inbox = new MemoryInbox<ExecutorReport>();
  const stop = startBusExecutor({ bus, subjects, handler, inbox, logger, reportBackoff: { baseMs: 1, factor: 2, maxMs: 4 } });
  return { bus, attempts, taken, handler, logger, inbox, stop };
}

describe('bus executor report delivery', () => {
  it('sends a report the session refused again until it is taken; the task ran once', async () => {
    const w = setup((attempt) => attempt <= 2);
    await publishTask(w.bus);
    await vi.waitFor(() => expect(w.taken).toHaveLength(1));
    expect(w.attempts).toHaveLength(3);
    expect(w.taken[0]!.headers[HEADER.messageId]).toBe('report.s1.t1.1');
    expect(w.handler).toHaveBeenCalledTimes(1);
    expect(w.logger.error).toHaveBeenCalledWith(expect.objectContaining({ dispatchId: 's1.t1.1', attempt: 2 }), 'report not delivered');
    await w.stop();
  });

  it('a redelivery while the report is being retried joins that retry instead of starting another', async () => {
    let open = false;
    const w = setup(() => !open);
    await publishTask(w.bus);
    await vi.waitFor(() => expect(w.attempts.length).toBeGreaterThanOrEqual(2)); // retrying now
    await publishTask(w.bus); // answered from the inbox; its report is the one being retried
    open = true;
    await vi.waitFor(() => expect(w.taken).toHaveLength(1));
    await w.stop();
    expect(w.taken).toHaveLength(1);
    expect(w.handler).toHaveBeenCalledTimes(1);
  });

  it('stopping ends the retries; the report stays recorded for a redelivery after restart', async () => {
    const w = setup(() => true);
    await publishTask(w.bus);
    await vi.waitFor(() => expect(w.attempts.length).toBeGreaterThanOrEqual(2));
    // Resolving at all shows the retry loop ended: stop waits for the work it tracks.
    await w.stop();
    expect(await w.inbox.get('s1.t1.1')).toMatchObject({ type: 'TaskCompleted', output: 'done' });
  });
});
