/** The KV snapshot value format: brotli-compressed JSON behind a header, or plain JSON (older). */
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { brotliCompress, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeSnapshot, encodeSnapshot, SNAPSHOT_HEADER } from '../../src/persistence/jetstream/kvSnapshotStore.js';
import type { Snapshot } from '../../src/persistence/snapshotStore.js';

const compress = promisify(brotliCompress);

const snapshot = (state: unknown): Snapshot => ({ streamId: 's1', version: 7, schema: 7, state });
const roundTrip = (value: unknown): unknown => JSON.parse(JSON.stringify(value));
const withHeader = (body: Uint8Array) => Buffer.concat([SNAPSHOT_HEADER, body]);

describe('encodeSnapshot / decodeSnapshot', () => {
  it('round-trips any JSON state as its JSON round trip', async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue(), async (state) => {
        const { value } = await encodeSnapshot(snapshot(state));
        expect(await decodeSnapshot(value)).toEqual(roundTrip(snapshot(state)));
      }),
      { numRuns: 100 },
    );
  });

  it('writes the header, then brotli; reports the JSON size', async () => {
    const s = snapshot({ text: 'repeated text '.repeat(10_000), note: 'ünïcode 🚀' });
    const { value, jsonBytes } = await encodeSnapshot(s);
    expect([...value.subarray(0, 4)]).toEqual([0x4a, 0x50, 0x53, 0x01]); // "JPS", format 1
    expect(jsonBytes).toBe(Buffer.byteLength(JSON.stringify(s)));
    expect(value.length).toBeLessThan(jsonBytes / 50);
  });

  it('reads plain JSON, the format before compression', async () => {
    const s = snapshot({ tasks: [{ id: 't1', note: 'ünïcode 🚀' }] });
    expect(await decodeSnapshot(Buffer.from(JSON.stringify(s)))).toEqual(s);
    expect(await decodeSnapshot(Buffer.from(` \n${JSON.stringify(s)}`))).toEqual(s);
  });

  it('compresses harder only when the fast result is over the limit but could fit', async () => {
    // Records like a session's tasks: the fast quality leaves room the slower one takes.
    const tasks = Array.from({ length: 5_000 }, (_, i) => ({ id: `t${i}`, status: 'Completed', attempts: 1 + (i % 3), output: `item ${i * 7919 % 10_007} processed` }));
    const s = snapshot({ tasks });
    const fast = (await encodeSnapshot(s)).value.length;
    const harder = (await encodeSnapshot(s, fast - 1)).value.length;
    expect(harder).toBeLessThan(fast * 0.95);
    // Over twice the limit: not worth a second pass.
    expect((await encodeSnapshot(s, Math.floor(fast / 2.5))).value.length).toBe(fast);
    // Under the limit: the fast one is kept.
    expect((await encodeSnapshot(s, fast)).value.length).toBe(fast);
  });

  it('leaves a value over the limit to the caller (it does not throw)', async () => {
    const s = snapshot({ blob: randomBytes(64 * 1024).toString('base64') });
    const { value } = await encodeSnapshot(s, 1_024);
    expect(value.length).toBeGreaterThan(1_024);
    expect(await decodeSnapshot(value)).toEqual(s);
  });

  it('decodes anything unreadable as undefined, never throws', async () => {
    const valid = (await encodeSnapshot(snapshot({ n: 1 }))).value;
    const cases: Array<[string, Uint8Array]> = [
      ['empty', new Uint8Array()],
      ['header only', SNAPSHOT_HEADER],
      ['header prefix', SNAPSHOT_HEADER.subarray(0, 2)],
      ['random after the header', withHeader(randomBytes(256))],
      ['truncated', valid.subarray(0, valid.length - 3)],
      ['brotli of text that is not JSON', withHeader(await compress('{"streamId": '))],
      ['next format', Buffer.concat([SNAPSHOT_HEADER.subarray(0, 3), Buffer.of(0x02), valid.subarray(4)])],
      ['gzip (never written)', gzipSync(JSON.stringify(snapshot({ n: 1 })))],
      ['plain JSON cut short', Buffer.from('{"streamId": "')],
      ['random bytes', randomBytes(256)],
    ];
    for (const [name, value] of cases) expect(await decodeSnapshot(value), name).toBeUndefined();
  });

  it('misses rather than expand a value past maxJsonBytes', async () => {
    const { value } = await encodeSnapshot(snapshot({ zeros: '0'.repeat(100_000) }));
    expect(await decodeSnapshot(value, 10_000)).toBeUndefined();
    expect(await decodeSnapshot(value, 200_000)).toMatchObject({ streamId: 's1' });
  });

  it('reads a value that is a view into a larger buffer', async () => {
    const s = snapshot({ n: 2 });
    const plain = Buffer.from(`xx${JSON.stringify(s)}yy`);
    expect(await decodeSnapshot(plain.subarray(2, plain.length - 2))).toEqual(s);
    const { value } = await encodeSnapshot(s);
    const padded = Buffer.concat([Buffer.from('pad'), value, Buffer.from('pad')]);
    expect(await decodeSnapshot(padded.subarray(3, padded.length - 3))).toEqual(s);
  });
});
