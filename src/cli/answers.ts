import type { CliIo } from './io.js';
import { MAX_TEXT } from '../protocol/inputs.js';
import { UsageError } from './cliErrors.js';
import { LineReader } from './lines.js';

/**
 * Where answers to clarifications come from, in order: the `--answer` flags, then stdin — a line
 * per answer, with a prompt when stdin is a terminal. `next()` resolves undefined when none is
 * available, which leaves the session waiting.
 */
export class AnswerSource {
  private readonly queued: string[];
  private reader: LineReader | undefined;
  private closed = false;

  /** `useStdin` is false when stdin was already read for the session's text. */
  constructor(
    answers: string[],
    private readonly io: CliIo,
    private readonly useStdin: boolean,
  ) {
    this.queued = [...answers];
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
      if (this.io.isTTY) this.io.stdout('answer> ');
      const line = await this.reader.next();
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
