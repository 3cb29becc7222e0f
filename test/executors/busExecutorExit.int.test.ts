import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const src = (path: string) => new URL(`../../src/${path}`, import.meta.url).href;

/** The reported repro: the runtime is closed while its bus executor still runs a task, never stopped. */
const REPRO = `
import { setTimeout as sleep } from 'node:timers/promises';
import { createEmbeddedRuntime } from '${src('runtime/embeddedRuntime.ts')}';
import { startBusExecutor } from '${src('executors/busExecutor.ts')}';
import { MemoryInbox } from '${src('persistence/inbox.ts')}';
import { silentLogger as logger } from '${src('observability/logger.ts')}';
const rt = await createEmbeddedRuntime();
startBusExecutor({ bus: rt.bus, subjects: rt.subjects, inbox: new MemoryInbox(), logger,
  handler: async () => { await sleep(200); return { type: 'completed', output: 'x' }; } });
await rt.planner.handle('x', { type: 'SubmitInput', text: 'Summarise it.' });
await rt.close();
console.log('closed');
`;

/** Runs `code` in a node of its own; resolves with its exit code, or 'alive' if it is still running after `ms`. */
function runNode(code: string, ms: number): Promise<{ exit: number | null | 'alive'; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => {
    // A deadline, not a wait: the test resolves as soon as the process exits.
    const deadline = setTimeout(() => {
      child.kill('SIGKILL');
      resolve({ exit: 'alive', stdout, stderr });
    }, ms);
    child.once('exit', (exit) => {
      clearTimeout(deadline);
      resolve({ exit, stdout, stderr });
    });
  });
}

describe('bus executor left running after its runtime closed', () => {
  it('does not keep the process alive', async () => {
    const run = await runNode(REPRO, 20_000);
    expect(run.stdout.trim(), run.stderr).toBe('closed');
    expect(run.exit, run.stderr).toBe(0);
  });
});
