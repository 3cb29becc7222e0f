import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { eventBody, oversized } from '../../src/persistence/jetstream/jetStreamAppends.js';
import type { NewEvent } from '../../src/protocol/events.js';
import { makeEvent, wireBytes } from './fixtures.js';

const text = fc.string({ unit: 'binary', maxLength: 300 });

describe('oversized: an append message against the stream limit', () => {
  it('never counts less than nats.js sends for the first event, and exactly as much for plain header values', () => {
    fc.assert(
      fc.property(text, text, text, fc.nat({ max: 2 ** 40 }), (reason, causationId, correlationId, seq) => {
        const event = { ...makeEvent('s1'), causationId, correlationId, data: { reason } } as NewEvent;
        const body = eventBody(event, 7);
        const size = wireBytes(event, body, seq);
        const counted = oversized([event], [body], seq, 0)!.size;
        // nats.js trims header values and collapses line breaks: only ever fewer bytes.
        expect(counted).toBeGreaterThanOrEqual(size);
        if ([causationId, correlationId].every((v) => v === v.trim() && !/[\r\n]/.test(v))) expect(counted).toBe(size);
        expect(oversized([event], [body], seq, counted)).toBeUndefined();
        expect(oversized([event], [body], seq, counted - 1)).toEqual({ index: 0, size: counted });
      }),
    );
  });

  it('bounds later events (whose expected sequence is not known yet) from above, and names the first too large', () => {
    const small = makeEvent('s1');
    const big = { ...makeEvent('s1'), data: { reason: 'x'.repeat(5_000) } } as NewEvent;
    const bodies = [eventBody(small, 1), eventBody(big, 2)];
    const limit = wireBytes(big, bodies[1]!, 10 ** 15); // as large as a later sequence gets
    expect(oversized([small, big], bodies, 3, limit)).toBeUndefined();
    expect(oversized([small, big], bodies, 3, limit - 1)).toEqual({ index: 1, size: limit });
    expect(oversized([small, big], bodies, 3, wireBytes(small, bodies[0]!, 3) - 1)).toMatchObject({ index: 0 });
  });
});
