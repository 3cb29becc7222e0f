import { execFileSync } from 'node:child_process';
import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import { LineReader, readAll } from '../../src/cli/lines.js';
import { shellQuote } from '../../src/cli/session.js';

async function lines(reader: LineReader): Promise<string[]> {
  const out: string[] = [];
  for (let line = await reader.next(); line !== undefined; line = await reader.next()) out.push(line);
  return out;
}

describe('LineReader', () => {
  it('splits on newlines, drops CR of CRLF, keeps a last line without newline, and decodes UTF-8 split across chunks', async () => {
    const euro = Buffer.from('€');
    const input = Readable.from([Buffer.from('one\r\ntwo\n\nthr'), Buffer.concat([Buffer.from('ee '), euro.subarray(0, 1)]), euro.subarray(1), Buffer.from('\nlast')]);
    expect(await lines(new LineReader(input))).toEqual(['one', 'two', '', 'three €', 'last']);
  });

  it('gives a line over the limit at once, cut to limit + 1, and drops its rest up to the newline', async () => {
    const input = new PassThrough();
    const reader = new LineReader(input, 5);
    input.write('abcdefghij'); // no newline yet: an endless line must not be waited on
    expect(await reader.next()).toBe('abcdef');
    input.end('klmnop\nok\n');
    expect(await lines(reader)).toEqual(['ok']);
  });

  it('stops reading while lines it read ahead wait (an endless stream of lines does not fill memory)', async () => {
    let pulled = 0;
    // The stream's own buffer size given, not Node's default (16 KiB on Node 20, 64 KiB from 22).
    const endless = new Readable({ highWaterMark: 16 * 1024, read() { pulled++; setImmediate(() => this.push('y\n'.repeat(100))); } });
    const reader = new LineReader(endless);
    expect(await reader.next()).toBe('y');
    // Paused, with the stream's buffer full: a paused stream whose buffer is at its highWaterMark
    // calls read() no more, so nothing more is pulled. Without the pause it would flow forever.
    await vi.waitFor(() => {
      expect(endless.isPaused()).toBe(true);
      expect(endless.readableLength).toBeGreaterThanOrEqual(endless.readableHighWaterMark);
    });
    expect(pulled * 200).toBeLessThan(64 * 1024);
    for (let i = 0; i < 500; i++) expect(await reader.next()).toBe('y'); // and it reads on when asked
    reader.close();
  });

  it('resolves pending and later reads undefined once closed', async () => {
    const input = new PassThrough();
    const reader = new LineReader(input);
    const pending = reader.next();
    reader.close();
    expect(await pending).toBeUndefined();
    expect(await reader.next()).toBeUndefined();
  });
});

describe('readAll', () => {
  it('reads a stream to its end, or stops one byte past the limit (an endless stream ends)', async () => {
    expect(await readAll(Readable.from(['ab', 'cd']))).toBe('abcd');
    const endless = new Readable({ read() { this.push('Step. '); } });
    expect(await readAll(endless, 10)).toBe('Step. Step.'); // 11 bytes: over the limit, for the caller's check
    expect(endless.destroyed).toBe(true);
  });
});

describe('shellQuote', () => {
  it('leaves plain paths alone and single-quotes the rest, so a pasted hint runs nothing', () => {
    expect(shellQuote('/tmp/data-1/x.y')).toBe('/tmp/data-1/x.y');
    expect(shellQuote('q$HOME`x`')).toBe("'q$HOME`x`'");
    expect(shellQuote("it's here")).toBe("'it'\\''s here'");
  });

  it("writes characters a terminal would act on or hide as bash $'…' escapes, which paste back to the same value", () => {
    const values = ['esc\u001b[31mdir', 'bidi\u202eevil', "q'\u0007\\x", 'tag\u{e0041}abc', 'c1\u0085', 'zero\u200bwidth €', 'two\nlines\tand a tab'];
    for (const value of values) {
      const quoted = shellQuote(value);
      expect(quoted).toMatch(/^\$'[\x20-\x7e€]*'$/); // printable ASCII (and text that shows) only
      // In any locale: the escapes are bytes, not \u (which bash reads only in a UTF-8 one).
      for (const locale of ['C', 'C.UTF-8']) {
        const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: locale };
        expect(execFileSync('bash', ['-c', `printf %s ${quoted}`], { encoding: 'utf8', env }), `${JSON.stringify(value)} in ${locale}`).toBe(value);
      }
    }
    expect(shellQuote('esc\u001b[31mdir')).toBe("$'esc\\x1b[31mdir'");
  });
});
