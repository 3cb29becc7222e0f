/** The executors' KV keys for dispatch ids, and their way back (used by purge to find a key's session). */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { dispatchIdOfKey, inboxKey } from '../../src/nats/executorInbox.js';

const sessionId = fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/);
const dispatchId = fc.tuple(sessionId, fc.option(fc.stringMatching(/^[0-9a-f]{8}$/), { nil: undefined }), fc.string({ minLength: 1 }), fc.nat(99))
  .map(([s, run, task, attempt]) => (run === undefined ? `${s}.${task}.${attempt}` : `${s}.${run}.${task}.${attempt}`));

describe('inboxKey and dispatchIdOfKey', () => {
  it('give back every dispatch id, whether its key is the id itself or encoded', () => {
    fc.assert(
      fc.property(dispatchId, (id) => {
        const key = inboxKey(id);
        expect(key).toMatch(/^[-/_=.a-zA-Z0-9]+$/);
        expect(dispatchIdOfKey(key)).toBe(id);
      }),
    );
  });

  it('never read a plain dispatch id of a session named x as an encoded one', () => {
    expect(dispatchIdOfKey('x.r1.t1.1')).toBe('x.r1.t1.1');
    expect(dispatchIdOfKey(inboxKey('other.r1.t:1.1'))).toBe('other.r1.t:1.1');
  });
});
