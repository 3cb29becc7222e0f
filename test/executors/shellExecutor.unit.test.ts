import { describe, expect, it } from 'vitest';
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
  it('takes the first code span of a description', () => {
    expect(commandOf('List the files with `ls -la` please')).toBe('ls -la');
    expect(commandOf('echo hi')).toBe('echo hi');
  });
});

describe('createShellHandler', () => {
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
    const started = Date.now();
    expect(await h(task('`sleep 5`'), tools())).toEqual({ type: 'failed', error: 'timed out after 200 ms', retryable: false });
    expect(Date.now() - started).toBeLessThan(4_000);
  });

  it('caps the output and says so', async () => {
    const h = createShellHandler({ allow: ['head'], maxOutputBytes: 100 });
    const out = await h(task('`head -c 5000 /dev/zero`'), tools());
    expect(out.type).toBe('completed');
    const text = out.type === 'completed' ? out.output : '';
    expect(text).toContain('[output truncated at 100 bytes]');
    expect(text.length).toBeLessThan(160);
  });

  it('reports a non-zero exit with the tail of stderr', async () => {
    const h = createShellHandler({ allow: ['ls'] });
    const out = await h(task('`ls /definitely/not/here`'), tools());
    expect(out).toMatchObject({ type: 'failed', retryable: false });
    expect(out.type === 'failed' && out.error).toMatch(/ls exited with code \d+: .*not/);
  });

  it('reports a missing program as a failure', async () => {
    const h = createShellHandler({ allow: ['no-such-program-xyz'] });
    expect(await h(task('no-such-program-xyz'), tools())).toMatchObject({ type: 'failed', retryable: false });
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
