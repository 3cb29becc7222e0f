import { describe, expect, it } from 'vitest';
import { startBusExecutor } from '../../src/executors/busExecutor.js';
import type { ExecutorReport, TaskHandler } from '../../src/executors/report.js';
import { silentLogger } from '../../src/observability/logger.js';
import { MemoryInbox } from '../../src/persistence/inbox.js';
import { createEmbeddedRuntime } from '../../src/runtime/embeddedRuntime.js';
import { aborted, latch, until } from '../support/waiting.js';

describe('bus executor: a session that ends while its task runs', () => {
  it('aborts the handler, records and reports nothing; other sessions run on', async () => {
    const rt = await createEmbeddedRuntime();
    const inbox = new MemoryInbox<ExecutorReport>();
    const started = latch();
    const reasons: string[] = [];
    const handler: TaskHandler = async (task, { signal }) => {
      if (task.sessionId !== 'a') return { type: 'completed', output: 'other session done' };
      started.release();
      await aborted(signal);
      reasons.push((signal.reason as Error).message);
      return { type: 'completed', output: 'done all the same' }; // ignored: the session has ended
    };
    const stop = startBusExecutor({ bus: rt.bus, subjects: rt.subjects, handler, inbox, logger: silentLogger });
    try {
      await rt.planner.handle('a', { type: 'SubmitInput', text: 'Summarise the notes.' });
      await started.promise;
      await rt.planner.handle('a', { type: 'CancelSession', reason: 'changed my mind' });
      await until(() => reasons.length === 1, 'the handler aborted');
      expect(reasons).toEqual(['session ended (SessionCancelled)']);
      await rt.planner.handle('b', { type: 'SubmitInput', text: 'Summarise the notes.' });
      await until(async () => (await rt.store.readStream('b')).events.some((e) => e.type === 'SessionCompleted'), 'session b completed');
      const a = (await rt.store.readStream('a')).events.map((e) => e.type);
      expect(a.at(-1)).toBe('SessionCancelled'); // no report came after it (it would be rejected)
      const dispatched = (await rt.store.readStream('a')).events.find((e) => e.type === 'TaskDispatched')!;
      expect(await inbox.get((dispatched.data as { dispatchId: string }).dispatchId)).toBeUndefined();
    } finally {
      await stop();
      await rt.close();
    }
  });
});
