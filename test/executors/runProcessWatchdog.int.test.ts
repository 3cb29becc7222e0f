import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runProgram, spawnHeld } from '../../src/executors/runProcess.js';
import { until } from '../support/waiting.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const src = (path: string) => new URL(`../../src/${path}`, import.meta.url).href;

/** An executor's process running one program (and a child of it) that writes its pids, then waits. */
const EXECUTOR = (pids: string) => `
import { runProgram } from '${src('executors/runProcess.ts')}';
void runProgram({ file: '/bin/sh', name: 'sh', args: ['-c', 'sleep 300 & echo "$$ $!" > ${pids}.tmp; mv ${pids}.tmp ${pids}; wait'],
  env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, timeoutMs: 600_000, maxOutputBytes: 1024, signal: new AbortController().signal });
`;

/** Whether `pid` is gone: no such process, or a zombie nobody has reaped yet. */
function gone(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z') ?? true;
  } catch {
    return true;
  }
}

describe.skipIf(process.platform !== 'linux')('a shell program whose executor dies', () => {
  it('is killed with everything it started, even when the executor is SIGKILLed', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jetplan-watchdog-'));
    const pidsFile = join(dir, 'pids');
    let pids: number[] = [];
    try {
      const executor = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', EXECUTOR(pidsFile)], { cwd: root, stdio: 'ignore' });
      const exited = new Promise((resolve) => executor.once('exit', resolve));
      await until(async () => {
        pids = (await readFile(pidsFile, 'utf8').catch(() => '')).trim().split(' ').filter(Boolean).map(Number);
        return pids.length === 2;
      }, 'the program to start');
      expect(pids.every((pid) => !gone(pid))).toBe(true);
      executor.kill('SIGKILL');
      await exited;
      await until(() => pids.every(gone), () => `the program (${pids.join(', ')}) to be killed after its executor died`);
    } finally {
      for (const pid of pids) if (!gone(pid)) process.kill(pid, 'SIGKILL'); // a failed run leaves nothing behind
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(process.platform === 'win32')('a program held until its watchdog is armed', () => {
  const options = (file: string, args: string[], dir: string) => ({
    file, args, name: file, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, cwd: dir,
    timeoutMs: 60_000, maxOutputBytes: 4_096, signal: new AbortController().signal,
  });

  it('never starts when its executor is gone before releasing it (its stdin closes first)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jetplan-held-'));
    try {
      const held = spawnHeld(options('/usr/bin/touch', ['ran'], dir));
      const exited = new Promise<number | null>((resolve) => held.once('exit', (code) => resolve(code)));
      held.stdin!.destroy(); // what an executor SIGKILLed between the two spawns leaves
      expect(await exited).toBe(125);
      await expect(readFile(join(dir, 'ran'))).rejects.toMatchObject({ code: 'ENOENT' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('runs with its arguments as given, never parsed by the shell', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jetplan-held-'));
    try {
      const args = ['a b', '$HOME', '"q"', "'s'", '*', '-n'];
      const outcome = await runProgram(options('/usr/bin/printf', ['%s|', ...args], dir));
      expect(outcome).toEqual({ type: 'completed', output: `${args.join('|')}|` });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

