import { Readable } from 'node:stream';
import { existsSync } from 'node:fs';
import { appendFile, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileEventStore } from '../../src/persistence/fileEventStore.js';
import { GLOBAL_FLAGS, parseArgs } from '../../src/cli/args.js';
import { createContext } from '../../src/cli/context.js';
import { createEmbeddedRuntime } from '../../src/runtime/embeddedRuntime.js';
import { fakeIo, run, tempDir } from './fakeIo.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => ({ dir, cleanup } = await tempDir()));
afterEach(() => cleanup());

/** Runs argv and expects exactly one stderr line, nothing on stdout, and the exit code. */
async function expectError(argv: string[], code: number, line: string | RegExp, options: Parameters<typeof run>[1] = {}) {
  const result = await run(argv, options);
  expect(result.io.stderrLines).toHaveLength(1);
  if (typeof line === 'string') expect(result.io.stderrLines[0]).toBe(line);
  else expect(result.io.stderrLines[0]).toMatch(line);
  expect(result.code).toBe(code);
  return result;
}

describe('usage errors (exit 2)', () => {
  it.each([
    [['demo', 'x', '--foo'], 'jetplan: unknown flag --foo (see jetplan help)'],
    [['demo', 'x', '--foo=1'], 'jetplan: unknown flag --foo (see jetplan help)'],
    [['demo', 'x', '-q'], 'jetplan: unknown flag -q (see jetplan help)'],
    [['--foo'], 'jetplan: unknown flag --foo (see jetplan help)'],
    [['demo', 'x', '--session'], 'jetplan: --session needs a value (see jetplan help)'],
    [['demo', 'x', '--session', '--json'], 'jetplan: --session needs a value (see jetplan help)'],
    [['demo', 'x', '--budget', 'abc'], 'jetplan: --budget expects a positive integer, got "abc" (see jetplan help)'],
    [['demo', 'x', '--max-attempts', '-1'], 'jetplan: --max-attempts expects a positive integer, got "-1" (see jetplan help)'],
    // 0 and -1 are the same mistake, with the same words.
    [['demo', 'x', '--max-attempts', '0'], 'jetplan: --max-attempts expects a positive integer, got "0" (see jetplan help)'],
    [['demo', 'x', '--budget', '0'], 'jetplan: --budget expects a positive integer, got "0" (see jetplan help)'],
    [['demo', 'x', '--json=yes'], 'jetplan: --json takes no value (see jetplan help)'],
    [['demo', 'x', '--config', '{nope'], 'jetplan: --config is not valid JSON (see jetplan help)'],
    [['demo', 'x', '--config', '[1]'], 'jetplan: --config must be a JSON object (see jetplan help)'],
    [['demo', 'x', '--config', '{"tokenbudget":10}'], 'jetplan: invalid config: config: Unrecognized key: "tokenbudget" (see jetplan help)'],
    [['demo', 'x', '--config', '{"backoff":{"basems":5}}'], 'jetplan: invalid config: backoff: Unrecognized key: "basems" (see jetplan help)'],
    [['demo', 'x', '--answer', ' '], 'jetplan: --answer needs a non-empty value (see jetplan help)'],
    [['demo', 'x', '--session', 'a b'], /^jetplan: --session: session id must be 1-64 characters/],
    [['frobnicate'], 'jetplan: unknown command frobnicate (see jetplan help)'],
    [[], 'jetplan: missing command (see jetplan help)'],
    [['--verbose'], 'jetplan: missing command (see jetplan help)'],
    [['help', 'nope'], 'jetplan: unknown command nope (see jetplan help)'],
    [['resume'], 'jetplan: resume needs a session id (see jetplan help)'],
    [['resume', 'a/b'], 'jetplan: invalid session id "a/b" (1-64 characters of [A-Za-z0-9_-]) (see jetplan help)'],
    [['replay', 'a', 'b'], 'jetplan: unexpected argument b (see jetplan help)'],
    [['replay', '../x'], 'jetplan: invalid session id "../x" (1-64 characters of [A-Za-z0-9_-]) (see jetplan help)'],
    // One rule, one wording, whatever the mistake: --until is an event sequence, and they start at 1.
    [['replay', 'a', '--until', '0'], 'jetplan: --until expects a positive integer, got "0" (see jetplan help)'],
    [['replay', 'a', '--until=0'], 'jetplan: --until expects a positive integer, got "0" (see jetplan help)'],
    [['replay', 'a', '--until', '-1'], 'jetplan: --until expects a positive integer, got "-1" (see jetplan help)'],
    [['replay', 'a', '--until', '1.5'], 'jetplan: --until expects a positive integer, got "1.5" (see jetplan help)'],
    [['replay', 'a', '--until', 'abc'], 'jetplan: --until expects a positive integer, got "abc" (see jetplan help)'],
    [['sessions', 'extra'], 'jetplan: unexpected argument extra (see jetplan help)'],
    [['--budget', '5', 'demo', 'x'], 'jetplan: --budget goes after the command (jetplan <command> --budget …) (see jetplan help)'],
    [['demo', 'x', '--inspect', '0'], 'jetplan: --inspect expects an integer from 1 to 65535, got "0" (see jetplan help)'],
    [['demo', 'x', '--inspect', '99999'], 'jetplan: --inspect expects an integer from 1 to 65535, got "99999" (see jetplan help)'],
  ])('%j', async (argv, line) => {
    await expectError([...argv, '--data-dir', dir], 2, line);
  });

  it('rejects unusable text before creating a session', async () => {
    await expectError(['demo', '--- ... !!!', '--data-dir', dir], 2, /^jetplan: input has no plannable text/);
    await expectError(['demo', '--data-dir', dir], 2, /^jetplan: input has no plannable text/, { stdin: '   \n' });
    expect(existsSync(join(dir, 'events.log'))).toBe(false);
  });

  it('needs text when stdin is a terminal', async () => {
    await expectError(['demo', '--data-dir', dir], 2, 'jetplan: demo needs the text to plan (an argument, or piped on stdin) (see jetplan help)', {
      isTTY: true,
    });
  });

  it('rejects a bad JETPLAN_DEMO_DELAY_MS', async () => {
    await expectError(['demo', 'x', '--data-dir', dir], 2, 'jetplan: JETPLAN_DEMO_DELAY_MS must be a non-negative integer, got "soon"', {
      env: { JETPLAN_DEMO_DELAY_MS: 'soon' },
    });
  });
});

describe('the --nats hook', () => {
  it('is unavailable in the embedded context (NATS commands provide it)', async () => {
    const ctx = createContext(parseArgs('replay', [], GLOBAL_FLAGS), fakeIo());
    await expect(ctx.natsStore('nats://localhost:4222')).rejects.toThrow('--nats is not available in this build');
  });
});

describe('failures (exit 1)', () => {
  it('refuses an empty --data-dir, a too long --answer or stdin answer, and endless stdin text, in one line, storing nothing', async () => {
    await expectError(['demo', 'Count the words.', '--data-dir', ''], 2, 'jetplan: --data-dir needs a non-empty value (see jetplan help)');
    const long = 'a'.repeat(64 * 1024 + 1);
    await expectError(['demo', 'Which format do you want?', '--data-dir', dir, '--answer', long], 2, 'jetplan: --answer is too long (more than 65536 characters) (see jetplan help)');
    expect((await run(['sessions', '--data-dir', dir])).io.stdoutText).toBe('no sessions\n');
    // A line with no end in sight: refused once it is too long, not read into memory forever.
    const endless = (chunk: string) => new Readable({ read() { setImmediate(() => this.push(chunk.repeat(1000))); } }); // as a pipe: chunks come later
    const answered = await run(['demo', 'Which format do you want?', '--data-dir', dir, '--session', 'la'], { stdin: endless('a') });
    expect(answered.code).toBe(2);
    expect(answered.io.stderrLines).toEqual(['jetplan: an answer on stdin is too long (more than 65536 characters) (see jetplan help)']);
    // Cut at the limit, a line whose rest is blank must not pass for a short answer.
    const padded = await run(['demo', 'Which format do you want?', '--data-dir', dir, '--session', 'lb'], { stdin: `${'a'.repeat(64 * 1024)} and more\n` });
    expect(padded.code).toBe(2);
    expect(padded.io.stderrLines).toEqual(['jetplan: an answer on stdin is too long (more than 65536 characters) (see jetplan help)']);
    const piped = await run(['demo', '--data-dir', dir], { stdin: endless('Step. ') });
    expect(piped.code).toBe(2);
    expect(piped.io.stderrLines).toEqual([expect.stringMatching(/^jetplan: input is too long: more than 65536 bytes/)]);
  });

  it('reports an unknown session', async () => {
    await expectError(['resume', 'nope', '--data-dir', dir], 1, 'jetplan: unknown session nope');
    await expectError(['replay', 'nope', '--data-dir', dir], 1, 'jetplan: unknown session nope');
    await expectError(['replay', 'nope', '--data-dir', join(dir, 'missing')], 1, 'jetplan: unknown session nope');
    await expectError(['resume', 'nope', '--data-dir', join(dir, 'missing')], 1, 'jetplan: unknown session nope');
    expect(existsSync(join(dir, 'missing'))).toBe(false); // a mistyped --data-dir leaves nothing behind
    await writeFile(join(dir, 'a-file'), 'x');
    await expectError(['resume', 'nope', '--data-dir', join(dir, 'a-file')], 1, `jetplan: data directory ${join(dir, 'a-file')} is not a directory`);
  });

  it('refuses to start a session id that exists', async () => {
    expect((await run(['demo', 'Count the words.', '--session', 'dup', '--data-dir', dir])).code).toBe(0);
    // Completed: nothing to continue, so no resume hint.
    await expectError(['demo', 'Count more words.', '--session', 'dup', '--data-dir', dir], 1, 'jetplan: session dup already exists (it is completed; see jetplan replay dup)');
  });

  it('starts a session id whose every input was rejected (it never started)', async () => {
    // A library caller's cancel before any submit: rejected, the session exists and has not started.
    const runtime = await createEmbeddedRuntime({ dataDir: dir });
    await runtime.planner.handle('rej', { type: 'CancelSession' });
    await runtime.close();
    const again = await run(['demo', 'Count the words.', '--session', 'rej', '--data-dir', dir]);
    expect(again.code).toBe(0);
    expect(again.io.stdoutText).toMatch(/status completed/);
  });

  it('reports a log corrupted in the middle as one line', async () => {
    const text = '- Count the words.\n- Sort the words\n- Print the list';
    expect((await run(['demo', text, '--session', 'c1', '--data-dir', dir])).code).toBe(0);
    const path = join(dir, 'events.log');
    const bytes = await readFile(path);
    const middle = Math.floor((await stat(path)).size / 2);
    bytes[middle] = bytes[middle]! ^ 0xff;
    await writeFile(path, bytes);
    const corrupt = /^jetplan: corrupt log: .*events\.log: corrupt record at byte offset \d+/;
    await expectError(['replay', 'c1', '--data-dir', dir], 1, corrupt);
    await expectError(['sessions', '--data-dir', dir], 1, corrupt);
    await expectError(['resume', 'c1', '--data-dir', dir], 1, corrupt);
    await expectError(['demo', 'Count.', '--data-dir', dir], 1, corrupt);
  });

  it('reports a data dir in use as one line to the commands that write; replay and sessions read it anyway', async () => {
    expect((await run(['demo', 'Count the words.', '--session', 'held', '--data-dir', dir])).code).toBe(0);
    const store = await FileEventStore.open(dir);
    try {
      const inUse = /^jetplan: data directory .* is in use by pid \d+ \(if that process is not jetplan, the lock is left from a crash: remove .*LOCK\)$/;
      await expectError(['demo', 'Count the words.', '--data-dir', dir], 1, inUse);
      await expectError(['resume', 'x', '--data-dir', dir], 1, inUse);
      // Readers take no lock: they read the log as it stands, e.g. while a demo runs.
      const sessions = await run(['sessions', '--data-dir', dir]);
      expect(sessions.io.err).toEqual([]);
      expect(sessions.io.stdoutText).toMatch(/^held +completed/m);
      const replay = await run(['replay', 'held', '--data-dir', dir]);
      expect(replay.code).toBe(0);
      expect(replay.io.stdoutText).toContain('session held  status completed');
      // A record being written (or a damaged last one) is left out, with a note.
      await appendFile(join(dir, 'events.log'), Buffer.from([0x4a, 0x50, 0x4c]));
      const torn = await run(['sessions', '--data-dir', dir]);
      expect(torn.code).toBe(0);
      expect(torn.io.stderrLines).toEqual([expect.stringMatching(/^jetplan: note: the last 3 bytes of .*events\.log are incomplete/)]);
      expect(torn.io.stdoutText).toMatch(/^held +completed/m);
    } finally {
      await store.close();
    }
    // resume, which opens the log for writing, cuts the torn tail and says so too.
    const resumed = await run(['resume', 'held', '--data-dir', dir]);
    expect(resumed.code).toBe(0);
    expect(resumed.io.stderrLines).toEqual([expect.stringMatching(/^jetplan: note: the last 3 bytes of .*events\.log were incomplete \(a crash mid-write, or damage\) and were cut; they are kept in .*events\.log\.tail-\*$/)]);
    expect((await run(['resume', 'held', '--data-dir', dir])).io.err).toEqual([]); // once
  });
});

describe('help', () => {
  it('prints usage for help, --help and -h', async () => {
    for (const argv of [['help'], ['--help'], ['-h']]) {
      const { code, io } = await run(argv);
      expect(code).toBe(0);
      expect(io.stdoutText).toContain('Usage: jetplan <command> [flags]');
      expect(io.stdoutText).toMatch(/demo +plan text into tasks/);
      expect(io.err).toEqual([]);
    }
  });

  it('prints a command usage for help <command> and <command> --help', async () => {
    const a = await run(['help', 'replay']);
    const b = await run(['replay', '--help']);
    expect(a.code).toBe(0);
    expect(b.code).toBe(0);
    expect(a.io.stdoutText).toContain('Usage: jetplan replay <session>');
    expect(b.io.stdoutText).toBe(a.io.stdoutText);
  });
});

describe('error lines', () => {
  it('show what the user typed escaped: control, bidirectional and invisible characters never reach the terminal raw', async () => {
    const { code, io } = await run(['resume', 's-\u001b[31mX\u202e', '--data-dir', '/nonexistent']);
    expect(code).toBe(2);
    expect(io.stderrLines).toEqual([expect.stringContaining('s-\\x1b[31mX\\u202e')]);
    const flag = await run(['demo', '--bogus\u001b]0;t\u0007']);
    expect(flag.io.err.join('')).toBe('jetplan: unknown flag --bogus\\x1b]0;t\\x07 (see jetplan help)\n');
  });

  it('escape zero-width spaces, tag characters and noncharacters in task text too, but not the joiners emoji need', async () => {
    const dir = await tempDir();
    const { code, io } = await run(['demo', 'Do \u200b zw. Do \u{e0041}\u{e0042} tag \ufffe. Wave 👋🏽‍ok.', '--data-dir', dir.dir]);
    expect(code).toBe(0);
    expect(io.stdoutText).toContain('Do \\u200b zw.');
    expect(io.stdoutText).toContain('\\u{e0041}\\u{e0042} tag \\ufffe.');
    expect(io.stdoutText).toContain('👋🏽\u200dok');
    await dir.cleanup();
  });
});
