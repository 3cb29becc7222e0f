import { describe, expect, it, vi } from 'vitest';
import type { RetryScheduler } from '../../src/actors/retryScheduler.js';
import { silentLogger } from '../../src/observability/logger.js';
import type { OutboxCommand } from '../../src/protocol/commands.js';
import { createEmbeddedRuntime } from '../../src/runtime/embeddedRuntime.js';
import { recoverSessions } from '../../src/service/recovery.js';

describe('recoverSessions', () => {
  it('re-issues the running task of an active session and skips ended ones without folding them', async () => {
    const runtime = await createEmbeddedRuntime();
    const { planner, store, repository } = runtime;
    const done = await planner.handle('done', { type: 'SubmitInput', text: 'Summarise the notes.' });
    const task = done.events.find((e) => e.type === 'TaskDispatched')!.data as { taskId: string; dispatchId: string };
    await planner.handle('done', { type: 'TaskCompleted', ...task, output: 'summarised' });
    await planner.handle('gone', { type: 'SubmitInput', text: 'Summarise the logs.' });
    await planner.handle('gone', { type: 'CancelSession', reason: 'not needed' });
    await planner.handle('live', { type: 'SubmitInput', text: 'Summarise the report.' });

    const performed: OutboxCommand[] = [];
    const watched: string[] = [];
    const load = vi.spyOn(repository, 'load');
    const result = await recoverSessions({
      store, repository, clock: () => 1_000, logger: silentLogger,
      effects: { perform: (commands) => void performed.push(...commands) },
      retries: { watch: (state: { sessionId: string }) => void watched.push(state.sessionId) } as unknown as RetryScheduler,
    });

    expect(result).toEqual({ sessions: 1, republished: 1, timers: 0, failed: 0, ended: 2 });
    expect(load.mock.calls.map(([id]) => id)).toEqual(['live']);
    expect(performed.map((c) => [c.command.type, c.sessionId])).toEqual([['ExecuteTask', 'live']]);
    expect(watched).toEqual(['live']);
    await runtime.close();
  });
});
