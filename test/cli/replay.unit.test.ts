import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createEmbeddedRuntime } from '../../src/runtime/embeddedRuntime.js';
import { FIVE_TASKS, run, tempDir } from './fakeIo.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => ({ dir, cleanup } = await tempDir()));
afterEach(() => cleanup());

const finished = async (session: string) => {
  const r = await run(['demo', FIVE_TASKS, '--session', session, '--data-dir', dir, '--answer', 'csv', '--answer', 'prod', '--backoff-ms', '0']);
  expect(r.code).toBe(0);
};

describe('jetplan replay', () => {
  it('prints the rebuilt state and a timeline of every event', async () => {
    await finished('r1');
    const { code, io } = await run(['replay', 'r1', '--data-dir', dir]);
    expect(code).toBe(0);
    const out = io.stdoutText;
    expect(out).toContain('session r1  status completed  phase done  version 19');
    expect(out).toMatch(/config: token budget 2048, max attempts 3, backoff 0ms ×2/);
    expect(out).toMatch(/context: \d+ items, \d+ tokens/);
    expect(out).toContain('tasks (5/5 completed):');
    expect(out).toMatch(/t2-f57bba83 {2}Completed {2}attempts 2 {2}Processing {2}Summarise the flaky results → processed/);
    expect(out).toMatch(/t3-ef63afa6 {2}Completed {2}attempts 0 {2}Clarification .*\(answer: csv\)/);
    expect(out).toContain('timeline (19 events):');
    for (let seq = 1; seq <= 19; seq++) expect(out).toMatch(new RegExp(`^ +${seq}  \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z  \\w+`, 'm'));
    for (const type of ['SessionStarted', 'TasksPlanned', 'TaskFailed', 'TaskRetryScheduled', 'ClarificationProvided', 'SessionCompleted']) {
      expect(out).toContain(type);
    }
  });

  it('prints a session that never started (only rejected inputs) instead of failing on its missing config', async () => {
    const runtime = await createEmbeddedRuntime({ dataDir: dir });
    await runtime.planner.handle('rej', { type: 'InvalidInput', reason: 'tokenBudget: at most 100000', inputType: 'SubmitInput' });
    await runtime.close();
    const { code, io } = await run(['replay', 'rej', '--data-dir', dir]);
    expect(io.stderrLines).toEqual([]);
    expect(code).toBe(0);
    expect(io.stdoutText).toContain('session rej  status idle  phase ready');
    expect(io.stdoutText).toContain('config: none (the session has not started: every input so far was rejected)');
    expect(io.stdoutText).toMatch(/InputRejected +.*tokenBudget: at most 100000/);
  });

  it('says "1 task", not "1 tasks"', async () => {
    await run(['demo', 'Summarise the notes.', '--session', 'one', '--data-dir', dir]);
    expect((await run(['replay', 'one', '--data-dir', dir])).io.stdoutText).toMatch(/SessionCompleted +1 task$/m);
  });

  it('stops at --until', async () => {
    await finished('r2');
    const { code, io } = await run(['replay', 'r2', '--until', '3', '--data-dir', dir]);
    expect(code).toBe(0);
    expect(io.stdoutText).toContain('status active  phase running  version 3');
    expect(io.stdoutText).toContain('timeline (3 events):');
  });

  it('prints {state, events} with --json', async () => {
    await finished('r3');
    const { code, io } = await run(['replay', 'r3', '--json', '--data-dir', dir]);
    expect(code).toBe(0);
    const { state, events } = JSON.parse(io.stdoutText) as { state: { status: string; tasks: unknown[]; context: { tokens: number } }; events: Array<{ sequence: number }> };
    expect(state.status).toBe('completed');
    expect(state.tasks).toHaveLength(5);
    expect(state.context.tokens).toBeGreaterThan(0);
    expect(events.map((e) => e.sequence)).toEqual(Array.from({ length: 19 }, (_, i) => i + 1));
  });

  it('summarises every kind of event', async () => {
    await run(['demo', 'Retry the flaky upload', '--session', 'f1', '--data-dir', dir, '--config', '{"maxAttempts":1}']);
    const text = Array.from({ length: 6 }, (_, i) => `- Summarise chapter ${i + 1} of the long report about rivers`).join('\n');
    await run(['demo', text, '--session', 'k1', '--data-dir', dir, '--budget', '40']);
    const failed = await run(['replay', 'f1', '--data-dir', dir]);
    expect(failed.io.stdoutText).toMatch(/TaskFailed .*\(final\)/);
    expect(failed.io.stdoutText).toMatch(/SessionFailed +task t1-\w+ failed \(not retryable\)|SessionFailed +task t1-\w+ failed after 1 attempt/);
    const compacted = await run(['replay', 'k1', '--data-dir', dir]);
    expect(compacted.io.stdoutText).toMatch(/ContextCompacted +\d+ → \d+ tokens \(budget 40\)/);
  });
});

describe('jetplan sessions', () => {
  it('says so when there are none', async () => {
    for (const d of [dir, `${dir}/missing`]) {
      const { code, io } = await run(['sessions', '--data-dir', d]);
      expect(code).toBe(0);
      expect(io.stdoutText).toBe('no sessions\n');
    }
    expect((await run(['sessions', '--json', '--data-dir', dir])).io.stdoutText).toBe('[]\n');
  });

  it('lists each session with status, tasks done/total and last event time', async () => {
    await finished('a1');
    await run(['demo', FIVE_TASKS, '--session', 'b2', '--data-dir', dir, '--backoff-ms', '0']);
    const { code, io } = await run(['sessions', '--data-dir', dir]);
    expect(code).toBe(0);
    const lines = io.stdoutText.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^a1  completed  5\/5 tasks  \d{4}-\d\d-\d\dT[\d:.]+Z$/);
    expect(lines[1]).toMatch(/^b2  active  2\/5 tasks  /);
    const json = JSON.parse((await run(['sessions', '--json', '--data-dir', dir])).io.stdoutText) as Array<{ sessionId: string; done: number; total: number }>;
    expect(json.map((r) => [r.sessionId, r.done, r.total])).toEqual([['a1', 5, 5], ['b2', 2, 5]]);
  });
});
