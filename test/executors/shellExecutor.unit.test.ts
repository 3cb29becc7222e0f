import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { commandOf, createShellHandler, parseArgv } from '../../src/executors/shellExecutor.js';
import type { ExecuteTask } from '../../src/protocol/commands.js';

const task = (description: string, kind: ExecuteTask['kind'] = 'ToolCall'): ExecuteTask => ({
  type: 'ExecuteTask',
  sessionId: 's1',
  taskId: 't1',
  dispatchId: 's1.t1.1',
  attempt: 1,
  kind,
  description,
  attachments: [],
  context: '',
});
const tools = () => ({ signal: new AbortController().signal, idempotencyKey: 's1.t1.1' });

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

/** Whether a process runs: a killed orphan can stay a zombie until PID 1 reaps it (containers). */
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = existsSync(`/proc/${pid}/stat`) ? readFileSync(`/proc/${pid}/stat`, 'utf8') : '';
  return !/^\d+ \(.*\) Z/.test(stat);
};

/**
 * A script (run by sh: allowed only with allowExecCapable) that starts `sleep 30` in the
 * background holding the output pipe, writes its pid to a file, then runs `$2` in the foreground.
 */
async function lingering(): Promise<{ dir: string; script: string; pidFile: string; grandchild: () => Promise<number> }> {
  const dir = await mkdtemp(join(tmpdir(), 'jetplan-shell-'));
  dirs.push(dir);
  const script = join(dir, 'linger.sh');
  const pidFile = join(dir, 'pid');
  await writeFile(script, 'sleep 30 &\necho $! > "$1.tmp" && mv "$1.tmp" "$1"\necho started\nexec "$2" "$3"\n');
  const grandchild = async (): Promise<number> => {
    await vi.waitFor(() => expect(existsSync(pidFile)).toBe(true), { timeout: 10_000 });
    return Number((await readFile(pidFile, 'utf8')).trim());
  };
  return { dir, script, pidFile, grandchild };
}

describe('parseArgv / commandOf', () => {
  it('splits with quotes and escapes', () => {
    expect(parseArgv(`echo 'a b' "c \\"d\\"" e\\ f  g`)).toEqual(['echo', 'a b', 'c "d"', 'e f', 'g']);
    expect(parseArgv('  ')).toEqual([]);
    expect(parseArgv(`printf ''`)).toEqual(['printf', '']);
  });
  it('rejects shell metacharacters and unterminated quotes', () => {
    for (const bad of ['ls; rm x', 'a | b', 'a && b', 'echo $HOME', 'a > f', 'a < f', 'echo `id`', "echo 'a;b'"]) {
      expect(() => parseArgv(bad)).toThrow(/shell syntax is not allowed/);
    }
    expect(() => parseArgv('echo "abc')).toThrow(/unterminated/);
  });
  it('refuses what no program can be given: a NUL, or one argument of 128 KiB or more', () => {
    expect(() => parseArgv('echo a\u0000b')).toThrow('a NUL character in the command');
    expect(() => parseArgv(`echo ${'x'.repeat(128 * 1024)}`)).toThrow('an argument of 131072 bytes or more');
    expect(parseArgv(`echo ${'x'.repeat(1_000)}`)).toHaveLength(2);
  });
  it('takes the first code span of a description', () => {
    expect(commandOf('List the files with `ls -la` please')).toBe('ls -la');
    expect(commandOf('echo hi')).toBe('echo hi');
  });
});

describe('createShellHandler', () => {
  it('reports a command no program can be given as a failure that is not retried', async () => {
    const h = createShellHandler({ allow: ['echo'] });
    expect(await h(task('Run `echo a\u0000b`.'), tools())).toEqual({ type: 'failed', error: 'a NUL character in the command', retryable: false });
    // Each argument under the limit, all of them together over what exec takes (E2BIG at spawn).
    const many = Array.from({ length: 40 }, () => 'y'.repeat(100_000)).join(' ');
    expect(await h(task(`echo ${many}`), tools())).toMatchObject({ type: 'failed', error: expect.stringMatching(/^cannot run echo: /), retryable: false });
  });

  it('runs an allowed program', async () => {
    const h = createShellHandler({ allow: ['echo'] });
    expect(await h(task('Say it: `echo hi`'), tools())).toEqual({ type: 'completed', output: 'hi\n' });
  });

  it('refuses a program not on the allow-list, naming it and the list', async () => {
    const h = createShellHandler({ allow: ['echo', 'ls'] });
    const out = await h(task('rm -rf /tmp/nothing'), tools());
    expect(out).toMatchObject({ type: 'failed', retryable: false });
    expect(out.type === 'failed' && out.error).toMatch(/"rm" is not allowed \(allowed: echo, ls\)/);
    // a path runs only when it is on the list exactly: any file called `echo` is not `echo`
    for (const path of ['/bin/rm x', '/bin/echo ok', './echo ok', '/tmp/x/echo ok', '/bin/../bin/echo ok']) {
      expect(await h(task(path), tools()), path).toMatchObject({ type: 'failed', retryable: false });
    }
    const exact = createShellHandler({ allow: ['/bin/echo'] });
    expect(await exact(task('/bin/echo ok'), tools())).toEqual({ type: 'completed', output: 'ok\n' });
    expect(await exact(task('echo ok'), tools())).toMatchObject({ type: 'failed', retryable: false });
  });

  it('rejects shell syntax as a non-retryable failure', async () => {
    const h = createShellHandler({ allow: ['echo'] });
    expect(await h(task('`echo hi; echo there`'), tools())).toEqual({
      type: 'failed',
      error: 'shell syntax is not allowed',
      retryable: false,
    });
  });

  it('kills a program that runs too long', async () => {
    const h = createShellHandler({ allow: ['sleep'], timeoutMs: 200 });
    expect(await h(task('`sleep 5`'), tools())).toEqual({ type: 'failed', error: 'timed out after 200 ms', retryable: false });
  });

  it('caps the output and says so', async () => {
    const h = createShellHandler({ allow: ['head'], maxOutputBytes: 100 });
    const out = await h(task('`head -c 5000 /dev/zero`'), tools());
    expect(out.type).toBe('completed');
    const text = out.type === 'completed' ? out.output : '';
    expect(text).toContain('[output truncated at 100 bytes]');
    expect(text.length).toBeLessThan(160);
  });

  it('says where a report really cuts output kept beyond what a report carries (maxOutputBytes over 64 KiB)', async () => {
    const h = createShellHandler({ allow: ['head'], maxOutputBytes: 150_000 });
    const out = await h(task('`head -c 200000 /dev/zero`'), tools());
    const text = out.type === 'completed' ? out.output : '';
    const cut = Number(/\[output truncated at (\d+) bytes\]$/.exec(text)?.[1]);
    expect(cut).toBeLessThanOrEqual(64 * 1024);
    expect(text.indexOf('\n[output truncated')).toBe(cut);
  });

  it('refuses at start a working directory that does not exist (every command would fail as a spawn error)', () => {
    expect(() => createShellHandler({ allow: ['head'], cwd: '/nonexistent/dir' })).toThrow('shell executor: cwd /nonexistent/dir is not a directory');
  });

  it('returns output of exactly maxOutputBytes whole, and marks one byte more as cut', async () => {
    const h = createShellHandler({ allow: ['head'], maxOutputBytes: 100 });
    expect(await h(task('`head -c 100 /dev/zero`'), tools())).toEqual({ type: 'completed', output: '\0'.repeat(100) });
    const over = await h(task('`head -c 101 /dev/zero`'), tools());
    expect(over.type === 'completed' && over.output).toBe(`${'\0'.repeat(100)}\n[output truncated at 100 bytes]`);
  });

  it('reports a non-zero exit with the tail of stderr', async () => {
    const h = createShellHandler({ allow: ['ls'] });
    const out = await h(task('`ls /definitely/not/here`'), tools());
    expect(out).toMatchObject({ type: 'failed', retryable: false });
    expect(out.type === 'failed' && out.error).toMatch(/ls exited with code \d+: .*not/);
  });

  it('refuses to start when an allowed program is missing', () => {
    expect(() => createShellHandler({ allow: ['no-such-program-xyz'] })).toThrow('allowed program "no-such-program-xyz" is not found on PATH');
  });

  it('completes Processing tasks with a short echo', async () => {
    const h = createShellHandler({ allow: [] });
    expect(await h(task('Summarise the logs', 'Processing'), tools())).toEqual({ type: 'completed', output: 'processed: Summarise the logs' });
  });

  it('kills the program when aborted', async () => {
    const h = createShellHandler({ allow: ['sleep'] });
    const controller = new AbortController();
    const pending = h(task('sleep 5'), { signal: controller.signal, idempotencyKey: 'k' });
    controller.abort();
    expect(await pending).toMatchObject({ type: 'failed', error: 'aborted' });
  });
});

describe('process groups, environment and abort', () => {
  it('a timeout kills the whole group and reports without waiting for a grandchild holding the pipe', async () => {
    const l = await lingering();
    // Long enough for the script to start its grandchild and write its pid on a loaded machine.
    const h = createShellHandler({ allow: ['sh'], allowExecCapable: true, timeoutMs: 3_000 });
    const out = await h(task(`sh ${l.script} ${l.pidFile} sleep 30`), tools());
    expect(out).toEqual({ type: 'failed', error: 'timed out after 3000 ms', retryable: false });
    const pid = await l.grandchild();
    await vi.waitFor(() => expect(alive(pid)).toBe(false), { timeout: 10_000 });
  });

  it('a program that exits 0 succeeds even if a background grandchild lingers; the grandchild is killed', async () => {
    const l = await lingering();
    const h = createShellHandler({ allow: ['sh'], allowExecCapable: true, timeoutMs: 20_000 });
    const out = await h(task(`sh ${l.script} ${l.pidFile} true`), tools());
    expect(out).toEqual({ type: 'completed', output: 'started\n' });
    const pid = await l.grandchild();
    await vi.waitFor(() => expect(alive(pid)).toBe(false), { timeout: 10_000 });
  });

  it('an abort kills the whole group', async () => {
    const l = await lingering();
    const h = createShellHandler({ allow: ['sh'], allowExecCapable: true, timeoutMs: 20_000 });
    const controller = new AbortController();
    const pending = h(task(`sh ${l.script} ${l.pidFile} sleep 30`), { signal: controller.signal, idempotencyKey: 'k' });
    const pid = await l.grandchild();
    controller.abort();
    expect(await pending).toEqual({ type: 'failed', error: 'aborted', retryable: true, aborted: true });
    await vi.waitFor(() => expect(alive(pid)).toBe(false), { timeout: 10_000 });
  });

  it('an already-aborted signal runs nothing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jetplan-shell-'));
    dirs.push(dir);
    const h = createShellHandler({ allow: ['touch'] });
    const controller = new AbortController();
    controller.abort();
    const out = await h(task(`touch ${join(dir, 'ran')}`), { signal: controller.signal, idempotencyKey: 'k' });
    expect(out).toEqual({ type: 'failed', error: 'aborted', retryable: true, aborted: true });
    expect(existsSync(join(dir, 'ran'))).toBe(false);
  });

  it('children get only PATH (the allowed programs\' directories), HOME and LANG', async () => {
    const env = { PATH: '/usr/bin:/bin', HOME: '/home/someone', LANG: 'C.UTF-8', SECRET: 'x', LD_PRELOAD: '/tmp/evil.so' };
    const h = createShellHandler({ allow: ['printenv'], env });
    const out = await h(task('printenv'), tools());
    expect(out.type === 'completed' && out.output.trim().split('\n').sort()).toEqual(['HOME=/home/someone', 'LANG=C.UTF-8', 'PATH=/usr/bin']);
  });

  it('runs the path resolved at startup, whatever PATH says later', async () => {
    const saved = process.env.PATH;
    const h = createShellHandler({ allow: ['echo'] });
    try {
      process.env.PATH = '';
      expect(await h(task('echo hi'), tools())).toEqual({ type: 'completed', output: 'hi\n' });
    } finally {
      process.env.PATH = saved;
    }
  });
});
