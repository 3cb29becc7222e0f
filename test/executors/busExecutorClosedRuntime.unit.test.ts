import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startBusExecutor } from '../../src/executors/busExecutor.js';
import type { ExecutorReport, TaskHandler } from '../../src/executors/report.js';
import { silentLogger } from '../../src/observability/logger.js';
import { FileInbox } from '../../src/persistence/inbox.js';
import type { DomainEvent } from '../../src/protocol/events.js';
import { createEmbeddedRuntime, type EmbeddedRuntime } from '../../src/runtime/embeddedRuntime.js';
import { latch } from '../support/waiting.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

function whenFinished(rt: EmbeddedRuntime, sessionId: string): Promise<DomainEvent> {
  return new Promise((resolve) => {
    rt.planner.onCommit((c) => {
      const last = c.sessionId === sessionId && c.events.find((e) => ['SessionCompleted', 'SessionFailed', 'SessionCancelled'].includes(e.type));
      if (last) resolve(last);
    });
  });
}

describe('bus executor after its runtime closed', () => {
  it('stops retrying a report the closed runtime cannot take; the next run gets it from the inbox', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'jetplan-closed-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const inbox = await FileInbox.open<ExecutorReport>(join(dataDir, 'executions.log'));
    const entered = latch();
    const gate = latch();
    const handler = vi.fn<TaskHandler>(async () => {
      entered.release();
      await gate.promise;
      return { type: 'completed', output: 'summary' };
    });
    const logger = { debug: vi.fn(), info: vi.fn(), warn: vi.fn(), error: vi.fn() } as unknown as typeof silentLogger;

    const rt = await createEmbeddedRuntime({ dataDir, fsync: false });
    const publish = vi.spyOn(rt.bus, 'publish');
    const stop = startBusExecutor({ bus: rt.bus, subjects: rt.subjects, inbox, logger, handler });
    cleanups.push(stop);
    await rt.planner.handle('x', { type: 'SubmitInput', text: 'Summarise it.' });
    await entered.promise;
    const closing = rt.close(); // before the executor is stopped, while the task runs
    gate.release();
    await closing;

    await vi.waitFor(() =>
      expect(logger.error).toHaveBeenCalledWith(
        expect.objectContaining({ dispatchId: expect.any(String), attempt: 1 }),
        expect.stringMatching(/^report not delivered: no planner takes inputs on this bus/),
      ),
    );
    // That log is the delivery loop's last act: one try, nothing scheduled after it.
    expect(logger.error).toHaveBeenCalledTimes(1);
    expect(publish.mock.calls.filter(([subject]) => subject === rt.subjects.input('x'))).toHaveLength(1);
    const [dispatchId, report] = inbox.all()[0]!;
    expect(report).toMatchObject({ type: 'TaskCompleted', output: 'summary', dispatchId });

    // The next run issues the still-open dispatch again; the executor answers it from its inbox.
    const rt2 = await createEmbeddedRuntime({ dataDir, fsync: false });
    cleanups.push(() => rt2.close());
    const stop2 = startBusExecutor({ bus: rt2.bus, subjects: rt2.subjects, inbox, logger, handler });
    cleanups.push(stop2);
    const finished = whenFinished(rt2, 'x');
    await rt2.recover();
    expect(await finished).toMatchObject({ type: 'SessionCompleted' });
    expect(handler).toHaveBeenCalledTimes(1);
  });
});
