import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import type { CliIo, CliSignal } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';

/** A CliIo that records output, with a settable stdin and a signal trigger. */
export interface FakeIo extends CliIo {
  out: string[];
  err: string[];
  /** Sends a signal to the command's handlers (as Ctrl-C would). */
  signal(name?: CliSignal): void;
  /**
   * The number of signal handlers after each change. A real process whose last handler goes is
   * back to the default action: a signal then kills it outright.
   */
  readonly signalHandlerCounts: number[];
  /** Resolves when stdout has received text containing `text`. */
  waitForOut(text: string): Promise<void>;
  /** Resolves when stderr has received text containing `text`. */
  waitForErr(text: string): Promise<void>;
  readonly stdoutText: string;
  readonly stderrLines: string[];
}

/** Options of {@link fakeIo}. */
export interface FakeIoOptions {
  /** Lines (or whole text) fed to stdin, which then ends; omit for an empty, ended stdin. */
  stdin?: string | Readable;
  isTTY?: boolean;
  env?: Record<string, string | undefined>;
}

export function fakeIo(options: FakeIoOptions = {}): FakeIo {
  const out: string[] = [];
  const err: string[] = [];
  const watchers: Array<{ text: string; resolve: () => void }> = [];
  const errWatchers: Array<{ text: string; resolve: () => void }> = [];
  const wake = (list: typeof watchers, all: string) => {
    for (const w of list.splice(0)) {
      if (all.includes(w.text)) w.resolve();
      else list.push(w);
    }
  };
  const handlers = new Set<(s: CliSignal) => void>();
  const signalHandlerCounts: number[] = [];
  const stdin =
    options.stdin instanceof Readable ? options.stdin : Readable.from(options.stdin === undefined ? [] : [options.stdin]);
  const io: FakeIo = {
    out,
    err,
    stdin,
    isTTY: options.isTTY ?? false,
    env: options.env ?? {},
    stdout(text) {
      out.push(text);
      wake(watchers, out.join(''));
    },
    stderr(text) {
      err.push(text);
      wake(errWatchers, err.join(''));
    },
    onSignal(h) {
      const handler = (signal: CliSignal) => h(signal); // one entry per registration, as process.on
      handlers.add(handler);
      signalHandlerCounts.push(handlers.size);
      return () => {
        handlers.delete(handler);
        signalHandlerCounts.push(handlers.size);
      };
    },
    signal: (name = 'SIGINT') => [...handlers].forEach((h) => h(name)),
    signalHandlerCounts,
    waitForOut: (text) =>
      out.join('').includes(text) ? Promise.resolve() : new Promise((resolve) => watchers.push({ text, resolve })),
    waitForErr: (text) =>
      err.join('').includes(text) ? Promise.resolve() : new Promise((resolve) => errWatchers.push({ text, resolve })),
    get stdoutText() {
      return out.join('');
    },
    get stderrLines() {
      return err.join('').split('\n').filter(Boolean);
    },
  };
  return io;
}

/** A stdin the test writes to. */
export const openStdin = (): PassThrough => new PassThrough();

/** Runs the CLI in-process. */
export async function run(argv: string[], options: FakeIoOptions = {}): Promise<{ code: number; io: FakeIo }> {
  const io = fakeIo(options);
  const code = await main(argv, io);
  return { code, io };
}

/** A temp data dir, removed by the returned cleanup. */
export async function tempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'jetplan-cli-'));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Five tasks: a URL fetch, a flaky one (fails once), a question, a plain one and a deploy (asks). */
export const FIVE_TASKS = [
  '- Fetch https://example.com/data.',
  '- Summarise the flaky results',
  '- Which format do you want?',
  '- Write the summary table',
  '- Deploy the report',
].join('\n');
