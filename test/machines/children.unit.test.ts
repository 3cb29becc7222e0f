import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Children } from '../../src/machines/children.js';

describe('Children', () => {
  it('behaves like an immutable map: set returns a new map, the old one is unchanged', () => {
    const empty = Children.empty<number>();
    const one = empty.set('t1', 1);
    const two = one.set('t2', 2).set('t1', 10);
    expect([empty.size, one.size, two.size]).toEqual([0, 1, 2]);
    expect([one.get('t1'), two.get('t1'), two.get('t2'), two.get('t3')]).toEqual([1, 10, 2, undefined]);
    expect(empty.get('t1')).toBeUndefined();
    expect(two.get('toString')).toBeUndefined(); // own entries only
  });

  it('agrees with a Map under any sequence of sets, and round trips through JSON byte for byte', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.string({ maxLength: 8 }), fc.integer()), { maxLength: 300 }), (ops) => {
        let children = Children.empty<number>();
        const reference = new Map<string, number>();
        for (const [id, value] of ops) {
          children = children.set(id, value);
          reference.set(id, value);
        }
        expect(children.size).toBe(reference.size);
        for (const [id, value] of reference) expect(children.get(id)).toBe(value);
        expect(new Map(children.entries())).toEqual(reference);
        expect(children.keys().sort()).toEqual([...reference.keys()].sort());
        const json = JSON.stringify(children);
        const restored = Children.from(JSON.parse(json) as Record<string, number>);
        expect(JSON.stringify(restored)).toBe(json);
        // ... and stays identical under further sets
        expect(JSON.stringify(restored.set('x', 1))).toBe(JSON.stringify(children.set('x', 1)));
      }),
    );
  });
});
