import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IdMap } from '../../src/machines/idMap.js';

describe('IdMap', () => {
  it('behaves like an immutable map: set returns a new map, the old one is unchanged', () => {
    const empty = IdMap.empty<number>();
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
        let children = IdMap.empty<number>();
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
        const restored = IdMap.from(JSON.parse(json) as Record<string, number>);
        expect(JSON.stringify(restored)).toBe(json);
        // ... and stays identical under further sets
        expect(JSON.stringify(restored.set('x', 1))).toBe(JSON.stringify(children.set('x', 1)));
      }),
    );
  });

  it('setAll is a sequence of sets, and leaves the map it was called on unchanged', () => {
    const entry = fc.tuple(fc.constantFrom('__proto__', 'constructor', 't1', 't2'), fc.integer());
    const entries = fc.array(fc.oneof(fc.tuple(fc.string({ maxLength: 6 }), fc.integer()), entry), { maxLength: 200 });
    fc.assert(
      fc.property(entries, entries, (before, batch) => {
        const base = IdMap.empty<number>().setAll(before);
        const baseJson = JSON.stringify(base);
        const bulk = base.setAll(batch);
        const oneByOne = batch.reduce((map, [id, value]) => map.set(id, value), base);
        expect(JSON.stringify(bulk)).toBe(JSON.stringify(oneByOne));
        expect(bulk.size).toBe(oneByOne.size);
        for (const [id] of batch) expect(bulk.get(id)).toBe(oneByOne.get(id));
        expect(JSON.stringify(base)).toBe(baseJson);
      }),
    );
  });
});
