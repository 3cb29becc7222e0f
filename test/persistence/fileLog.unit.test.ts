import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isCorruptLogError } from '../../src/errors.js';
import { crc32, crc32Fallback, decodeFrame, encodeFrame, scanLog } from '../../src/persistence/fileLog.js';

const payloads = fc.array(fc.json({ maxDepth: 2 }), { minLength: 1, maxLength: 8 });

function log(items: readonly string[]): { buf: Buffer; ends: number[] } {
  const frames = items.map(encodeFrame);
  let end = 0;
  return { buf: Buffer.concat(frames), ends: frames.map((f) => (end += f.length)) };
}

describe('fileLog', () => {
  it('computes the standard CRC32 with the native and the fallback implementation', () => {
    const check = Buffer.from('123456789');
    expect(crc32Fallback(check)).toBe(0xcbf43926);
    expect(crc32(check)).toBe(0xcbf43926);
    fc.assert(
      fc.property(fc.uint8Array(), fc.uint8Array(), (a, b) => {
        expect(crc32Fallback(b, crc32Fallback(a))).toBe(crc32(Buffer.concat([a, b])));
      }),
    );
  });

  it('round-trips frames', () => {
    fc.assert(
      fc.property(payloads, (items) => {
        const { buf, ends } = log(items);
        const { frames, validEnd } = scanLog(buf);
        expect(frames.map((f) => f.payload.toString('utf8'))).toEqual(items);
        expect(validEnd).toBe(ends.at(-1));
      }),
    );
  });

  it('keeps exactly the complete frames of a log cut anywhere (a torn tail)', () => {
    fc.assert(
      fc.property(payloads, fc.nat(), (items, cutSeed) => {
        const { buf, ends } = log(items);
        const cut = cutSeed % (buf.length + 1);
        const { frames, validEnd } = scanLog(buf.subarray(0, cut));
        const complete = ends.filter((end) => end <= cut);
        expect(frames).toHaveLength(complete.length);
        expect(validEnd).toBe(complete.at(-1) ?? 0);
      }),
    );
  });

  it('throws CorruptLogError when any byte of a frame before the last is damaged', () => {
    fc.assert(
      fc.property(payloads.filter((p) => p.length >= 2), fc.nat(), fc.integer({ min: 1, max: 255 }), (items, at, xor) => {
        const { buf, ends } = log(items);
        const lastStart = ends.at(-2) as number;
        const pos = at % lastStart;
        const damaged = Buffer.from(buf);
        damaged[pos] = (damaged[pos] as number) ^ xor;
        let thrown: unknown;
        try {
          scanLog(damaged, 'test.log');
        } catch (err) {
          thrown = err;
        }
        expect(isCorruptLogError(thrown)).toBe(true);
        expect((thrown as Error).message).toMatch(/^test\.log: corrupt record at byte offset \d+/);
      }),
    );
  });

  it('explains why a frame does not decode', () => {
    const frame = encodeFrame('{}');
    expect(decodeFrame(frame.subarray(0, 5), 0)).toEqual({ ok: false, reason: 'incomplete header' });
    expect(decodeFrame(Buffer.concat([Buffer.from('x'), frame]), 0)).toEqual({ ok: false, reason: 'bad magic' });
    expect(decodeFrame(frame.subarray(0, frame.length - 1), 0)).toMatchObject({ ok: false });
    const flipped = Buffer.from(frame);
    flipped[flipped.length - 1] = 0x5b;
    expect(decodeFrame(flipped, 0)).toEqual({ ok: false, reason: 'checksum mismatch' });
  });
});
