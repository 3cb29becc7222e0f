import type { CliIo } from './io.js';
import { MAX_TEXT } from '../protocol/inputs.js';
import { UsageError } from './cliErrors.js';
import { LineReader } from './lines.js';

/** What a read that {@link AnswerSource.skip} ended resolves with. */
const SKIPPED: unique symbol = Symbol('skipped');

/**
 * Where answers to clarifications come from, in order: the `--answer` flags, then stdin — a line
 * per answer, with a prompt when stdin is a terminal. `next()` resolves undefined when none is
 * available, which leaves the session waiting.
 */
export class AnswerSource {
  private readonly queued: string[];
  private reader: LineReader | undefined;
  private closed = false;
  private stdinEnded = false;
  /** The line being waited for: kept across a {@link skip}, so no typed line is lost. */
  private pendingLine: Promise<string | undefined> | undefined;
  private skipCurrent: (() => void) | undefined;

  /**
   * `useStdin` is false when stdin was already read for the session's text. The prompt goes to
   * `prompt` (default stdout; `watch` keeps its stdout for events, so it prompts on stderr).
   */
  constructor(
    answers: string[],
    private readonly io: CliIo,
    private readonly useStdin: boolean,
    private readonly prompt: (text: string) => void = io.stdout,
  ) {
    this.queued = [...answers];
  }

  /** Whether stdin has ended (Ctrl-D on a terminal): no more answers will come from it. */
  get ended(): boolean {
    return this.stdinEnded;
  }

  /** Makes a `next()` that waits for a line resolve undefined now; the line, once typed, goes to the next call. */
  skip(): void {
    this.skipCurrent?.();
  }

  /** Whether `next()` has an answer to give without reading stdin: a flag not used yet. */
  get hasQueued(): boolean {
    return this.queued.length > 0;
  }

  /** `--answer` values no question has taken. */
  get unused(): number {
    return this.queued.length;
  }

  /** The next answer, or undefined when there is none (or input was closed by an interrupt). */
  async next(): Promise<string | undefined> {
    if (this.closed) return undefined;
    const flag = this.queued.shift();
    if (flag !== undefined) return flag;
    if (!this.useStdin) return undefined;
    this.reader ??= new LineReader(this.io.stdin, MAX_TEXT);
    for (;;) {
      if (this.io.isTTY) this.prompt('answer> ');
      const line = await this.readLine(this.reader);
      if (line === SKIPPED) return undefined;
      if (line === undefined) this.stdinEnded = true;
      if (line === undefined || this.closed) return undefined;
      const answer = line.trim();
      // The line as read: cut to MAX_TEXT + 1, so its trimmed rest could pass for a short one.
      if (line.length > MAX_TEXT) {
        // At a prompt the person can try again; piped, the input itself is wrong.
        if (!this.io.isTTY) throw new UsageError(tooLong('an answer on stdin'));
        this.io.stderr(`${tooLong('that answer')}; try again\n`);
        continue;
      }
      if (answer !== '') return answer;
    }
  }

  private async readLine(reader: LineReader): Promise<string | undefined | typeof SKIPPED> {
    this.pendingLine ??= reader.next();
    const skipped = new Promise<typeof SKIPPED>((resolve) => (this.skipCurrent = () => resolve(SKIPPED)));
    const line = await Promise.race([this.pendingLine, skipped]);
    this.skipCurrent = undefined;
    if (line !== SKIPPED) this.pendingLine = undefined;
    return line;
  }

  /** Stops taking input: pending and later `next()` calls resolve undefined. */
  close(): void {
    this.closed = true;
    this.reader?.close();
  }
}

/** Why an answer cannot be sent: longer than a ProvideClarification's answer may be. */
export function tooLong(what: string): string {
  return `${what} is too long (more than ${MAX_TEXT} characters)`;
}

/** `--answer` values, trimmed: refused (a usage error) if empty or too long, before anything is sent. */
export function checkedAnswers(answers: readonly string[]): string[] {
  const trimmed = answers.map((a) => a.trim());
  if (trimmed.some((a) => a === '')) throw new UsageError('--answer needs a non-empty value');
  if (trimmed.some((a) => a.length > MAX_TEXT)) throw new UsageError(tooLong('--answer'));
  return trimmed;
}
