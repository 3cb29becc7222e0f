import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FIVE_TASKS, fakeIo, openStdin, run, tempDir } from './fakeIo.js';
import { main } from '../../src/cli/main.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => ({ dir, cleanup } = await tempDir()));
afterEach(() => cleanup());

const executions = async (d: string): Promise<string[]> =>
  (await readFile(join(d, 'executions.log'), 'utf8')).split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { id: string }).id);


describe('jetplan demo', () => {
  it('runs a whole session with answers from --answer and shows progress', async () => {
    const { code, io } = await run(['demo', FIVE_TASKS, '--data-dir', dir, '--answer', 'csv', '--answer', 'prod', '--backoff-ms', '1']);
    expect(io.err).toEqual([]);
    expect(code).toBe(0);
    const lines = io.stdoutText.split('\n');
    expect(lines[0]).toMatch(/^session s-[0-9a-f]{8}$/);
    expect(io.stdoutText).toContain('▶ t1-');
    expect(io.stdoutText).toContain('✔ t1-');
    expect(io.stdoutText).toContain('✖ t2-');
    expect(io.stdoutText).toContain('? t3-ef63afa6 Which format do you want?');
    expect(io.stdoutText).toContain('answered "prod"');
    expect(io.stdoutText).toMatch(/status completed · tasks 5\/5 completed · 19 events · [\d.]+ tasks\/s · attempts succeeded 80%/);
    const ids = await executions(dir);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toHaveLength(6);
  });

  it('shows control characters in task text as escapes, never raw to the terminal', async () => {
    const { code, io } = await run(['demo', 'Colour the \u001b[31mtitle\u001b[0m red.\u0007 Which \u001b]0;pwned\u0007format?', '--data-dir', dir, '--answer', 'csv']);
    expect(code).toBe(0);
    expect(io.stdoutText).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
    expect(io.stdoutText).toContain('Colour the \\x1b[31mtitle\\x1b[0m red.');
  });

  it('names the session only once its first input is stored, so a named session can always be resumed', async () => {
    const io = fakeIo();
    const write = io.stdout;
    let storedWhenNamed: boolean | undefined;
    io.stdout = (text) => {
      if (text.startsWith('session ')) storedWhenNamed = readFileSync(join(dir, 'events.log'), 'utf8').includes('"sessionId":"s-named"');
      write(text);
    };
    expect(await main(['demo', 'Summarise the notes.', '--data-dir', dir, '--session', 's-named'], io)).toBe(0);
    expect(io.stdoutText.split('\n')[0]).toBe('session s-named');
    expect(storedWhenNamed).toBe(true);
  });

  it('shows bidirectional controls as escapes, so text cannot pass for other text on the screen', async () => {
    const { code, io } = await run(['demo', 'Summarise \u202eevil\u202c text. Check \u2067it\u2069.', '--data-dir', dir]);
    expect(code).toBe(0);
    expect(io.stdoutText).not.toMatch(/[\u202a-\u202e\u2066-\u2069]/);
    expect(io.stdoutText).toContain('Summarise \\u202eevil\\u202c text.');
  });

  it('says when --answer values are left over, instead of dropping them in silence', async () => {
    const { code, io } = await run(['demo', 'Summarise the notes.', '--data-dir', dir, '--answer', 'x', '--answer', 'y']);
    expect(code).toBe(0);
    expect(io.stderrLines).toEqual(['jetplan: 2 --answer values not used (no more questions)']);
  });

  it('refuses in one line, before any session exists, a budget too small for the system prompt', async () => {
    const { code, io } = await run(['demo', 'Summarise the notes.', '--data-dir', dir, '--budget', '5']);
    expect(code).toBe(2);
    expect(io.stderrLines).toEqual(['jetplan: invalid config: tokenBudget 5 cannot hold the system prompt (9 tokens) (see jetplan help)']);
    expect((await run(['sessions', '--data-dir', dir])).io.stdoutText).toBe('no sessions\n');
  });

  it('takes answers from stdin lines after the --answer flags', async () => {
    const { code, io } = await run(['demo', FIVE_TASKS, '--data-dir', dir, '--answer', 'csv', '--backoff-ms', '0'], {
      stdin: '\n  \nprod\n',
    });
    expect(code).toBe(0);
    expect(io.stdoutText).toContain('answered "csv"');
    expect(io.stdoutText).toContain('answered "prod"');
    expect(io.stdoutText).toContain('status completed');
  });

  it('reads the text from stdin when none is given', async () => {
    const { code, io } = await run(['demo', '--data-dir', dir, '--session', 'piped'], { stdin: 'Summarise the notes.\nCount the words.' });
    expect(code).toBe(0);
    expect(io.stdoutText.split('\n')[0]).toBe('session piped');
    expect(io.stdoutText).toContain('status completed · tasks 2/2 completed');
  });

  it('waits when no answer is available, and resume continues it', async () => {
    const first = await run(['demo', FIVE_TASKS, '--data-dir', dir, '--session', 'w1', '--backoff-ms', '0']);
    expect(first.code).toBe(0);
    expect(first.io.stdoutText).toContain('waiting for an answer to t3-ef63afa6: Which format do you want?');
    expect(first.io.stdoutText).toContain(`continue with: jetplan resume w1 --data-dir ${dir} --answer "<answer>"`);

    const second = await run(['resume', 'w1', '--data-dir', dir, '--answer', 'csv']);
    expect(second.code).toBe(0);
    expect(second.io.stdoutText).toContain('? t3-ef63afa6: Which format do you want?');
    expect(second.io.stdoutText).toContain('waiting for an answer to t5-');

    const third = await run(['resume', 'w1', '--data-dir', dir], { stdin: 'prod\n' });
    expect(third.code).toBe(0);
    expect(third.io.stdoutText).toContain('status completed · tasks 5/5 completed');

    const done = await run(['resume', 'w1', '--data-dir', dir]);
    expect(done.code).toBe(0);
    expect(done.io.stdoutText).toBe('session w1\nstatus completed · tasks 5/5 completed · 19 events\n');
    expect(done.io.err).toEqual([]);
    // Answers for a session that has ended are not used, and it says so.
    const late = await run(['resume', 'w1', '--data-dir', dir, '--answer', 'too late']);
    expect(late.code).toBe(0);
    expect(late.io.stderrLines).toEqual(['jetplan: session w1 is completed; --answer not used']);
    const ids = await executions(dir);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('prints one JSON object with --json, equal to what replay rebuilds', async () => {
    const { code, io } = await run(['demo', FIVE_TASKS, '--json', '--data-dir', dir, '--answer', 'a', '--answer', 'b', '--backoff-ms', '0']);
    expect(code).toBe(0);
    expect(io.out).toHaveLength(1);
    const printed = JSON.parse(io.stdoutText) as { sessionId: string; outcome: string; status: string; state: unknown };
    expect(printed).toMatchObject({ outcome: 'finished', status: 'completed' });
    const replay = await run(['replay', printed.sessionId, '--json', '--data-dir', dir]);
    expect((JSON.parse(replay.io.stdoutText) as { state: unknown }).state).toEqual(printed.state);
  });

  it('prints the waiting outcome as JSON', async () => {
    const { code, io } = await run(['demo', 'Which format do you want?', '--json', '--data-dir', dir]);
    expect(code).toBe(0);
    expect(JSON.parse(io.stdoutText)).toMatchObject({ outcome: 'waiting', question: 'Which format do you want?' });
  });

  it('asks with a prompt on a terminal', async () => {
    const stdin = openStdin();
    const io = fakeIo({ stdin, isTTY: true });
    const done = main(['demo', '- Which format do you want?\n- Write it down', '--data-dir', dir], io);
    await io.waitForOut('answer> ');
    stdin.write('yaml\n');
    expect(await done).toBe(0);
    expect(io.stdoutText).toContain('answered "yaml"');
    expect(io.stdoutText).toContain('status completed');
  });

  it('fails the session when a task runs out of attempts (exit 1)', async () => {
    const { code, io } = await run(['demo', 'Retry the flaky upload', '--data-dir', dir, '--config', '{"maxAttempts":1}']);
    expect(code).toBe(1);
    expect(io.stdoutText).toContain('(giving up)');
    // The status line says why it failed.
    expect(io.stdoutText).toMatch(/status failed \(task t1-\w+ failed after 1 attempt\w*: transient failure .+\) · tasks 0\/1 completed/);
    // resume of the ended session exits as demo did.
    const sessionId = /^session (\S+)$/m.exec(io.stdoutText)![1]!;
    const resumed = await run(['resume', sessionId, '--data-dir', dir]);
    expect(resumed.code).toBe(1);
    expect(resumed.io.stdoutText).toContain('status failed');
  });

  it('shows compaction when the context outgrows a small budget', async () => {
    const text = Array.from({ length: 6 }, (_, i) => `- Summarise chapter ${i + 1} of the long report about rivers`).join('\n');
    const { code, io } = await run(['demo', text, '--data-dir', dir, '--budget', '40']);
    expect(code).toBe(0);
    expect(io.stdoutText).toContain('✂ context compacted');
  });

  it('writes debug logs with session and task ids to stderr with --verbose', async () => {
    const { code, io } = await run(['demo', 'Count the words.', '--verbose', '--data-dir', dir, '--session', 'v1']);
    expect(code).toBe(0);
    const logs = io.err.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(logs.some((l) => l.sessionId === 'v1' && typeof l.taskId === 'string' && l.correlationId === 'v1')).toBe(true);
  });
});

describe('interrupting', () => {
  it('closes cleanly on Ctrl-C mid-task (exit 130), and resume finishes without re-running', async () => {
    const io = fakeIo({ env: { JETPLAN_DEMO_DELAY_MS: '60000' } });
    const done = main(['demo', FIVE_TASKS, '--data-dir', dir, '--session', 'i1'], io);
    await io.waitForOut('▶ t1-');
    io.signal('SIGINT');
    expect(await done).toBe(130);
    expect(io.stderrLines).toEqual([`interrupted; continue with: jetplan resume i1 --data-dir ${dir}`]);

    const resumed = await run(['resume', 'i1', '--data-dir', dir, '--answer', 'csv', '--answer', 'prod']);
    expect(resumed.code).toBe(0);
    expect(resumed.io.stdoutText).toContain('status completed · tasks 5/5 completed');
    const ids = await executions(dir);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('stops waiting for a typed answer on SIGTERM', async () => {
    const stdin = openStdin();
    const io = fakeIo({ stdin, isTTY: true });
    const done = main(['demo', 'Which format do you want?', '--json', '--data-dir', dir, '--session', 'i2'], io);
    await io.waitForOut('answer> ');
    io.signal('SIGTERM');
    expect(await done).toBe(143); // 128 + SIGTERM, as a shell reports it
    expect(io.stdoutText).toContain('{"sessionId":"i2","outcome":"interrupted"}');
    expect(io.stderrLines).toHaveLength(1);
  });
});

