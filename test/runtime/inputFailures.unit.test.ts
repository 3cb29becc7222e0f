import { describe, expect, it } from 'vitest';
import { CorruptLogError } from '../../src/errors.js';
import { silentLogger } from '../../src/observability/logger.js';
import { Faults, InputFailures, type RuntimeFault } from '../../src/runtime/faults.js';

describe('InputFailures', () => {
  it('reports a store fault met outside the store at once, and an input failing the limit in a row as stuck', () => {
    const faults = new Faults(silentLogger);
    const seen: RuntimeFault[] = [];
    faults.on((f) => seen.push(f));
    const failures = new InputFailures(faults, 3);

    // A record the upcaster cannot read: not transient, and no store wrapper saw it.
    const corrupt = new CorruptLogError('session s1: event 4 is not a known version');
    failures.failed('s1', 'm1', corrupt);
    expect(seen).toEqual([{ error: corrupt }]);

    const boom = new Error('boom');
    failures.failed('s2', 'm2', boom);
    failures.failed('s2', 'm2', boom);
    failures.applied('m2'); // applied after all: the count starts again
    failures.failed('s2', 'm2', boom);
    failures.failed('s2', 'm2', boom);
    expect(seen).toHaveLength(1);
    failures.failed('s2', 'm2', boom);
    expect(seen).toHaveLength(2);
    expect(seen[1]).toMatchObject({ sessionId: 's2' });
    expect(seen[1]!.error.message).toBe('input m2 of session s2 not applied after 3 attempts: boom');
  });
});
