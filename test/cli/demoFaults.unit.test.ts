import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.js';
import { failFrameWith } from '../runtime/failingLog.js';
import { FIVE_TASKS, fakeIo, run, tempDir } from './fakeIo.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => ({ dir, cleanup } = await tempDir()));
afterEach(async () => {
  vi.restoreAllMocks();
  await cleanup();
});

const executions = async (): Promise<string[]> =>
  (await readFile(join(dir, 'executions.log'), 'utf8')).split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { id: string }).id);

/** Starts a demo whose executions take a minute, and interrupts it once its first task runs. */
async function interruptedDemo(sessionId: string): Promise<void> {
  const io = fakeIo({ env: { JETPLAN_DEMO_DELAY_MS: '60000' } });
  const done = main(['demo', FIVE_TASKS, '--data-dir', dir, '--session', sessionId], io);
  await io.waitForOut('▶ t1-');
  io.signal('SIGINT');
  expect(await done).toBe(130);
}

describe('demo on a store that fails', () => {
  it('ends with one line and exit 1 when the log is poisoned (a full disk), and resume then finishes', async () => {
    failFrameWith('"TaskCompleted"');
    const { code, io } = await run(['demo', FIVE_TASKS, '--data-dir', dir, '--session', 'f1', '--answer', 'csv', '--answer', 'prod']);
    expect(code).toBe(1);
    expect(io.stdoutText).toContain('▶ t1-');
    expect(io.stdoutText).not.toContain('status');
    expect(io.stderrLines).toHaveLength(1);
    expect(io.stderrLines[0]).toMatch(/^jetplan: .*events\.log: a write failed earlier; reopen the store \(ENOSPC: no space left on device, write\); continue with: jetplan resume f1 --data-dir /);

    vi.restoreAllMocks(); // space freed
    const resumed = await run(['resume', 'f1', '--data-dir', dir, '--answer', 'csv', '--answer', 'prod']);
    expect(resumed.io.err).toEqual([]);
    expect(resumed.code).toBe(0);
    expect(resumed.io.stdoutText).toContain('status completed · tasks 5/5 completed');
    const ids = await executions();
    expect(new Set(ids).size).toBe(ids.length); // the first task was answered from executions.log
  });

  it('reports the fault as JSON too with --json', async () => {
    failFrameWith('"TaskCompleted"');
    const { code, io } = await run(['demo', 'Count the words.', '--json', '--data-dir', dir, '--session', 'f2']);
    expect(code).toBe(1);
    expect(JSON.parse(io.stdoutText)).toMatchObject({ sessionId: 'f2', outcome: 'fault', error: expect.stringContaining('reopen the store') });
    expect(io.stderrLines).toHaveLength(1);
  });
});

describe('resume of one session among several', () => {
  it('runs that session only; the others stay where they were interrupted', async () => {
    await interruptedDemo('A');
    await interruptedDemo('B');

    const a = await run(['resume', 'A', '--data-dir', dir, '--answer', 'csv', '--answer', 'prod']);
    expect(a.code).toBe(0);
    expect(a.io.stdoutText).toContain('status completed · tasks 5/5 completed');
    expect((await executions()).filter((id) => id.startsWith('B.'))).toEqual([]);
    const b = await run(['replay', 'B', '--json', '--data-dir', dir]);
    expect(JSON.parse(b.io.stdoutText)).toMatchObject({ state: { status: 'active', tasks: [{ status: 'Running' }, {}, {}, {}, {}] } });

    const resumed = await run(['resume', 'B', '--data-dir', dir, '--answer', 'csv', '--answer', 'prod']);
    expect(resumed.code).toBe(0);
    expect(resumed.io.stdoutText).toContain('status completed · tasks 5/5 completed');
    const ids = await executions();
    expect(new Set(ids).size).toBe(ids.length);
  });
});
