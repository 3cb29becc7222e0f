import { describe, expect, it } from 'vitest';
import { unappliedOf, type AppliedInputs, type BacklogInput } from '../../src/service/inputBacklog.js';
import { silentLogger } from '../../src/observability/logger.js';

const held = (inputs: BacklogInput[], applied: AppliedInputs | Error) =>
  unappliedOf(new Map([['s1', inputs]]), async () => (applied instanceof Error ? Promise.reject(applied) : applied), silentLogger);

describe('which backlog inputs hold their session (unappliedOf)', () => {
  const window = { recentInputs: ['a', 'm', 'b'], inputSequenceFloor: 3 };

  it('holds the inputs the session has not applied, by id or below its floor', async () => {
    const backlog = [{ seq: 2, messageId: 'old' }, { seq: 5, messageId: 'm' }, { seq: 8, messageId: 'new' }];
    expect(await held(backlog, window)).toEqual([['s1', 8]]);
  });

  it('does not hold a session behind an input at exactly its floor, whose id has left the inbox window', async () => {
    // The floor is inclusive, as the decider's isProcessed: an input at or below it was applied
    // (and acked). Held, it would never be redelivered, and the session's later inputs would wait
    // out the whole backlog hold (2 minutes) after a leader change.
    const backlog = [{ seq: 7, messageId: 'evicted' }, { seq: 9, messageId: 'new' }];
    expect(await held(backlog, { recentInputs: ['later'], inputSequenceFloor: 7 })).toEqual([['s1', 9]]);
  });

  it('holds the unfinished input, but not an applied copy of the same id under another sequence', async () => {
    // m was applied at 5 and acked; its copy at 9 was cut short: only 9 will be redelivered.
    const backlog = [{ seq: 5, messageId: 'm' }, { seq: 9, messageId: 'm' }];
    expect(await held(backlog, { ...window, unfinished: { messageId: 'm', inputSequence: 9 } })).toEqual([['s1', 9]]);
    // Without a sequence (events of the embedded bus, or logged before sequences) the id decides.
    expect(await held(backlog, { ...window, unfinished: { messageId: 'm' } })).toEqual([['s1', 5], ['s1', 9]]);
  });

  it('holds everything when the applied inputs cannot be loaded', async () => {
    const backlog = [{ seq: 5, messageId: 'm' }, { seq: 8, messageId: 'new' }];
    expect(await held(backlog, new Error('no responders'))).toEqual([['s1', 5], ['s1', 8]]);
  });
});
