import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SessionRepository } from '../../src/actors/sessionRepository.js';
import { FileEventStore } from '../../src/persistence/fileEventStore.js';
import { stateView } from '../../src/cli/view.js';
import type { PlannerState } from '../../src/protocol/domain.js';
import { FIVE_TASKS, tempDir } from './fakeIo.js';

const ROOT = resolve(import.meta.dirname, '../..');
const BIN = join(ROOT, 'bin/jetplan.js');

let dir: string;
let cleanup: () => Promise<void>;
const children: ChildProcess[] = [];

beforeAll(() => {
  // `npm test` builds first; when run on its own, build dist/ (tsc emits even if it reports errors).
  if (!existsSync(join(ROOT, 'dist/cli/main.js'))) {
    try {
      execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'ignore' });
    } catch {
      /* emitted anyway; a missing file fails the tests below */
    }
  }
});
beforeEach(async () => ({ dir, cleanup } = await tempDir()));
afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await cleanup();
});

interface Running {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves once stdout contains `text`. */
  waitForStdout(text: string): Promise<void>;
}

function jetplan(args: string[], env: Record<string, string> = {}): Running {
  const child = spawn(process.execPath, [BIN, ...args, '--data-dir', dir], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  let err = '';
  const waiters: Array<{ text: string; resolve: () => void }> = [];
  child.stdout!.on('data', (chunk: Buffer) => {
    out += chunk.toString();
    for (const w of waiters.splice(0)) (out.includes(w.text) ? w.resolve : () => waiters.push(w))();
  });
  child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    child.on('exit', (code, signal) => res({ code, signal })),
  );
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitForStdout: (text) => (out.includes(text) ? Promise.resolve() : new Promise((res) => waiters.push({ text, resolve: res }))),
  };
}

const executionIds = async (): Promise<string[]> => {
  const text = await readFile(join(dir, 'executions.log'), 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean).map((line) => (JSON.parse(line) as { id: string }).id);
};

/** Polls the child's executions.log (a file another process writes) until it has `n` entries. */
async function untilExecutions(n: number, deadlineMs = 20_000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while ((await executionIds()).length < n) {
    if (Date.now() > deadline) throw new Error(`executions.log never reached ${n} entries`);
    await sleep(10);
  }
}

async function resumeToCompletion(session: string): Promise<PlannerState> {
  const resumed = jetplan(['resume', session, '--json', '--answer', 'csv', '--answer', 'prod']);
  const { code } = await resumed.exited;
  expect(resumed.stderr()).toBe('');
  expect(code).toBe(0);
  const printed = JSON.parse(resumed.stdout()) as { outcome: string; status: string; state: PlannerState };
  expect(printed).toMatchObject({ outcome: 'finished', status: 'completed' });
  return printed.state;
}

async function expectDurableAndExact(session: string, printed: PlannerState): Promise<void> {
  const ids = await executionIds();
  expect(new Set(ids).size).toBe(ids.length);
  expect(printed.tasks.map((t) => t.status)).toEqual(Array(5).fill('Completed'));
  const replay = jetplan(['replay', session, '--json']);
  expect((await replay.exited).code).toBe(0);
  expect((JSON.parse(replay.stdout()) as { state: PlannerState }).state).toEqual(printed);
  const store = await FileEventStore.open(dir);
  try {
    const { state } = await new SessionRepository({ store }).rebuild(session);
    expect(stateView(state)).toEqual(printed);
  } finally {
    await store.close();
  }
}

describe('jetplan CLI, end to end in child processes', () => {
  it('survives SIGKILL mid-session: resume finishes without running any dispatch twice', async () => {
    const demo = jetplan(['demo', FIVE_TASKS, '--session', 'k1', '--answer', 'csv', '--answer', 'prod'], {
      JETPLAN_DEMO_DELAY_MS: '150',
    });
    await demo.waitForStdout('session k1');
    await untilExecutions(2);
    demo.child.kill('SIGKILL');
    expect((await demo.exited).signal).toBe('SIGKILL');
    expect(demo.stdout()).not.toContain('status completed');

    const state = await resumeToCompletion('k1');
    expect(state.status).toBe('completed');
    await expectDurableAndExact('k1', state);
  });

  /** A demo of `sessionId` stopped by `signal` while its first task runs: its exit code is `code`, with a resume hint. */
  async function interruptDemo(sessionId: string, signal: NodeJS.Signals, code: number): Promise<void> {
    const demo = jetplan(['demo', FIVE_TASKS, '--session', sessionId, '--answer', 'csv', '--answer', 'prod'], {
      JETPLAN_DEMO_DELAY_MS: '10000',
    });
    await demo.waitForStdout('▶ t1-');
    demo.child.kill(signal);
    expect((await demo.exited).code).toBe(code);
    expect(demo.stderr()).toBe(`interrupted; continue with: jetplan resume ${sessionId} --data-dir ${dir}\n`);
  }

  it('stops cleanly on SIGINT with exit 130 and a resume hint, then resume completes', async () => {
    await interruptDemo('c2', 'SIGINT', 130);
    const state = await resumeToCompletion('c2');
    await expectDurableAndExact('c2', state);
  });

  it('stops cleanly on SIGHUP (the terminal closed) with exit 129 and a resume hint, leaving no lock', async () => {
    await interruptDemo('c3', 'SIGHUP', 129);
    expect(existsSync(join(dir, 'LOCK'))).toBe(false);
  });
});
