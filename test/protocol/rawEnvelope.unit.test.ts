import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RawEnvelope, safeParseRawEnvelope } from '../../src/protocol/events.js';

const valid = {
  id: 'e1',
  version: 1,
  sessionId: 's1',
  sequence: 3,
  timestamp: 1_700_000_000_000,
  causationId: 'c1',
  correlationId: 's1',
  type: 'SessionCancelled',
  data: { reason: 'stop' },
};

/** What a parse gives, comparable: the data with its key order, or zod's issues. */
const outcome = (r: ReturnType<typeof RawEnvelope.safeParse>) =>
  r.success ? { keys: Object.keys(r.data), data: r.data } : { issues: r.error.issues };

/** Field values that pass, fail, or sit on the edge of the envelope's checks. */
const fieldValue = fc.oneof(
  fc.constantFrom(0, -0, 1, -1, 1.5, 2 ** 53, 2 ** 53 - 1, 1e300, '', 'x', null, true, [], {}, [1], { a: 1 }),
  fc.integer(),
  fc.double(),
  fc.string(),
  fc.jsonValue(),
);
const KEYS = ['id', 'version', 'sessionId', 'sequence', 'timestamp', 'causationId', 'correlationId', 'inputSequence', 'type', 'data', 'extra'];

describe('safeParseRawEnvelope', () => {
  it('gives what RawEnvelope.safeParse gives for envelopes with any field changed, removed or added (JSON values)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom(...KEYS), fc.option(fieldValue, { nil: undefined })), { maxLength: 4 }),
        fc.boolean(),
        (edits, reorder) => {
          const value: Record<string, unknown> = { ...valid };
          for (const [key, v] of edits) {
            if (v === undefined) delete value[key];
            else value[key] = v;
          }
          const source = reorder ? Object.fromEntries(Object.entries(value).reverse()) : value;
          const json = JSON.parse(JSON.stringify(source)) as unknown;
          expect(outcome(safeParseRawEnvelope(json))).toEqual(outcome(RawEnvelope.safeParse(json)));
          const a = safeParseRawEnvelope(json);
          const b = RawEnvelope.safeParse(json);
          if (a.success && b.success) expect(Object.keys(a.data)).toEqual(Object.keys(b.data));
        },
      ),
      { numRuns: 5_000 },
    );
  });

  it('refuses what is not an object as zod does', () => {
    for (const json of [null, 1, 'x', [], [valid], true]) {
      expect(outcome(safeParseRawEnvelope(json))).toEqual(outcome(RawEnvelope.safeParse(json)));
    }
  });

  it('keeps inputSequence when present and drops unknown keys', () => {
    const r = safeParseRawEnvelope({ ...valid, inputSequence: 7, extra: 1 });
    expect(r.success && Object.keys(r.data)).toEqual([
      'id', 'version', 'sessionId', 'sequence', 'timestamp', 'causationId', 'correlationId', 'inputSequence', 'type', 'data',
    ]);
  });
});
