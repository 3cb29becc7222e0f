import { createInterface, type Interface } from 'node:readline';
import type { Readable } from 'node:stream';

/** Reads a stream line by line on demand; `next()` resolves undefined at EOF or after close. */
export class LineReader {
  private readonly rl: Interface;
  private readonly buffered: string[] = [];
  private readonly waiters: Array<(line: string | undefined) => void> = [];
  private ended = false;

  constructor(input: Readable) {
    this.rl = createInterface({ input, crlfDelay: Infinity, terminal: false });
    this.rl.on('line', (line) => {
      const waiter = this.waiters.shift();
      if (waiter) waiter(line);
      else this.buffered.push(line);
    });
    this.rl.on('close', () => {
      this.ended = true;
      for (const waiter of this.waiters.splice(0)) waiter(undefined);
    });
  }

  /** The next line, or undefined once the input has ended or the reader was closed. */
  next(): Promise<string | undefined> {
    if (this.buffered.length > 0) return Promise.resolve(this.buffered.shift());
    if (this.ended) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Stops reading; pending and later `next()` calls resolve undefined. */
  close(): void {
    this.buffered.length = 0;
    this.rl.close();
  }
}

/** Reads a whole stream as UTF-8 text (piped input, up to EOF). */
export async function readAll(input: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of input) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}
