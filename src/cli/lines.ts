import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';

/** Lines read ahead of `next()` before the input is paused: `yes | jetplan demo` must not fill memory. */
const MAX_BUFFERED_LINES = 64;

/**
 * Reads a stream line by line on demand; `next()` resolves undefined at EOF or after close. A line
 * is kept to `maxLineChars + 1` characters (the rest, up to its newline, is dropped): an endless
 * line must neither grow memory without bound nor crash (readline's buffer does both), and a
 * caller that checks lengths still sees that the line was too long.
 */
export class LineReader {
  private readonly buffered: string[] = [];
  private readonly waiters: Array<(line: string | undefined) => void> = [];
  private readonly decoder = new StringDecoder('utf8');
  private partial = '';
  /** Dropping the rest of a line already given as too long, up to its newline. */
  private skipping = false;
  private ended = false;
  private readonly onData = (chunk: Buffer | string) => this.take(typeof chunk === 'string' ? chunk : this.decoder.write(chunk));
  private readonly onEnd = () => {
    const rest = this.partial + this.decoder.end();
    if (rest !== '') this.line(rest);
    this.finish();
  };

  constructor(
    private readonly input: Readable,
    private readonly maxLineChars = Infinity,
  ) {
    input.on('data', this.onData);
    input.on('end', this.onEnd);
    input.on('error', this.onEnd);
  }

  /** The next line, or undefined once the input has ended or the reader was closed. */
  next(): Promise<string | undefined> {
    if (this.buffered.length > 0) {
      const line = this.buffered.shift();
      if (this.buffered.length < MAX_BUFFERED_LINES && !this.ended) this.input.resume();
      return Promise.resolve(line);
    }
    if (this.ended) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Stops reading; pending and later `next()` calls resolve undefined. */
  close(): void {
    this.buffered.length = 0;
    this.input.off('data', this.onData);
    this.input.off('end', this.onEnd);
    this.input.off('error', this.onEnd);
    this.input.pause();
    this.finish();
  }

  private take(text: string): void {
    let start = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
      if (!this.skipping) this.line(this.partial + text.slice(start, nl));
      this.partial = '';
      this.skipping = false;
      start = nl + 1;
    }
    if (this.skipping) return;
    this.partial = (this.partial + text.slice(start)).slice(0, this.maxLineChars + 1);
    if (this.partial.length > this.maxLineChars) {
      // Too long already: given now (its end may never come), the rest of it dropped.
      this.line(this.partial);
      this.partial = '';
      this.skipping = true;
    }
  }

  private line(raw: string): void {
    const line = (raw.endsWith('\r') ? raw.slice(0, -1) : raw).slice(0, this.maxLineChars + 1);
    const waiter = this.waiters.shift();
    if (waiter) waiter(line);
    else if (this.buffered.push(line) >= MAX_BUFFERED_LINES) this.input.pause(); // lines nobody asked for yet: stop reading
  }

  private finish(): void {
    this.ended = true;
    for (const waiter of this.waiters.splice(0)) waiter(undefined);
  }
}

/**
 * Reads a whole stream as UTF-8 text (piped input, up to EOF), or its first `maxBytes + 1` bytes:
 * enough for the caller's size check to refuse it, without reading an endless stream forever.
 */
export async function readAll(input: Readable, maxBytes = Infinity): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of input) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    chunks.push(bytes);
    size += bytes.length;
    if (size > maxBytes) break; // leaving the loop destroys the stream: the writer gets EPIPE
  }
  return Buffer.concat(chunks).subarray(0, Number.isFinite(maxBytes) ? maxBytes + 1 : undefined).toString('utf8');
}
