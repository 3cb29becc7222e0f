import { describe, expect, it } from 'vitest';
import { InputHolds } from '../../src/service/inputHolds.js';

const HOLD = 120_000;

function holdsAt(start = 0) {
  const clock = { now: start };
  return { holds: new InputHolds(() => clock.now), clock };
}

describe('InputHolds', () => {
  it("holds a session's later inputs behind a nak'd one until it is applied, and no other session", () => {
    const { holds } = holdsAt();
    holds.hold('s', 5);
    expect(holds.isBlocked('s', 7)).toBe(true);
    expect(holds.isBlocked('s', 5)).toBe(false); // itself, redelivered
    expect(holds.isBlocked('s', 3)).toBe(false);
    expect(holds.isBlocked('t', 7)).toBe(false);
    holds.applied('s', 5);
    expect(holds.isBlocked('s', 7)).toBe(false);
  });

  it('releases a backlog input never delivered once its hold has passed (the previous leader acked it)', () => {
    const { holds, clock } = holdsAt(1_000);
    holds.holdBacklog('s', 5, HOLD);
    expect(holds.isBlocked('s', 9)).toBe(true);
    clock.now += HOLD - 1;
    expect(holds.isBlocked('s', 9)).toBe(true);
    clock.now += 1;
    expect(holds.isBlocked('s', 9)).toBe(false);
  });

  it('a backlog input delivered holds until applied, however long', () => {
    const { holds, clock } = holdsAt();
    holds.holdBacklog('s', 5, HOLD);
    holds.delivered(5);
    holds.hold('s', 5); // it failed: nak'd
    clock.now += 10 * HOLD;
    expect(holds.isBlocked('s', 9)).toBe(true);
    holds.applied('s', 5);
    expect(holds.isBlocked('s', 9)).toBe(false);
  });

  it('a second backlog read that no longer lists a held input does not keep it held (a consume restart)', () => {
    const { holds, clock } = holdsAt();
    holds.holdBacklog('s', 5, HOLD);
    clock.now += HOLD / 2;
    holds.holdBacklog('s', 8, HOLD); // read again: 5 is below the new ack floor
    clock.now += HOLD / 2;
    expect(holds.isBlocked('s', 7)).toBe(false); // 5 released on its own time
    expect(holds.isBlocked('s', 9)).toBe(true); // 8 still held
    clock.now += HOLD / 2;
    expect(holds.isBlocked('s', 9)).toBe(false);
  });

  it('a backlog input listed again is held for the later of its holds; clear() forgets all', () => {
    const { holds, clock } = holdsAt();
    holds.holdBacklog('s', 5, HOLD);
    clock.now += HOLD / 2;
    holds.holdBacklog('s', 5, HOLD);
    clock.now += HOLD / 2;
    expect(holds.isBlocked('s', 9)).toBe(true);
    holds.clear();
    expect(holds.isBlocked('s', 9)).toBe(false);
  });
});
