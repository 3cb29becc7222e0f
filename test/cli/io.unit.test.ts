import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { quietWriter } from '../../src/cli/io.js';

describe('quietWriter', () => {
  it('writes until the stream fails (the reader of a pipe went away), then drops the rest quietly', async () => {
    const written: string[] = [];
    let fail = false;
    const stream = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        if (fail) return callback(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
        written.push(chunk.toString());
        callback();
      },
    });
    const write = quietWriter(stream);
    write('first\n');
    fail = true;
    write('second\n'); // fails: emits 'error', which must not be unhandled
    await new Promise<void>((resolve) => stream.once('close', () => resolve())); // destroyed by the failure
    write('third\n'); // after the failure: dropped, no throw
    expect(written).toEqual(['first\n']);
  });
});
