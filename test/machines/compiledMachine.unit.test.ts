import { describe, expect, it } from 'vitest';
import { assign, enqueueActions, raise, sendTo, setup, spawnChild, createMachine } from 'xstate';
import { compileMachine } from '../../src/machines/compiledMachine.js';
import { isUnsupportedMachineError } from '../../src/errors.js';

const refused = (build: () => unknown): string => {
  try {
    build();
  } catch (e) {
    expect(isUnsupportedMachineError(e)).toBe(true);
    return (e as Error).message;
  }
  throw new Error('compiled, but should have been refused');
};

describe('compileMachine', () => {
  const child = setup({ types: { context: {} as { n: number }, input: {} as { n: number } } }).createMachine({
    id: 'child',
    initial: 'a',
    context: ({ input }) => ({ n: input.n }),
    states: { a: { on: { bump: { target: 'b', actions: assign({ n: ({ context }) => context.n + 1 }) } } }, b: {} },
  });
  const parent = setup({
    types: { context: {} as { count: number; note?: string }, events: {} as { type: 'add'; by: number } | { type: 'spawn' } | { type: 'bump' } | { type: 'clear' } | { type: 'go' } },
    actors: { child },
    guards: { big: ({ event }, params: { min: number }) => event.type === 'add' && event.by >= params.min },
    actions: {
      report: (_, _p: unknown) => {},
      addBy: assign({ count: ({ context, event }) => context.count + (event.type === 'add' ? event.by : 0) }),
    },
  }).createMachine({
    id: 'parent',
    initial: 'outer',
    context: { count: 0 },
    on: { clear: { actions: assign({ note: undefined }) } },
    states: {
      outer: {
        initial: 'inner',
        on: {
          add: [
            { guard: { type: 'big', params: { min: 10 } }, target: 'done', actions: ['addBy', { type: 'report', params: ({ context }: { context: { count: number } }) => ({ count: context.count }) }] },
            { actions: ['addBy', assign({ note: 'small' })] },
          ],
          spawn: { actions: enqueueActions(({ enqueue }) => enqueue.spawnChild('child', { id: 'c1', input: { n: 5 } })) },
          bump: { actions: sendTo('c1', { type: 'bump' }) },
        },
        states: { inner: { on: { go: 'other' } }, other: {} },
      },
      done: {},
    },
  });
  const compiled = compileMachine<{ count: number; note?: string }>(parent);

  it('follows the machine: guards with params, deepest transition first, assign in order, named effects with params', () => {
    let s = compiled.initial(undefined);
    expect(JSON.parse(JSON.stringify(s))).toEqual({ value: { outer: 'inner' }, context: { count: 0 }, children: {} });
    let actions;
    [s, actions] = compiled.transition(s, { type: 'add', by: 2 } as never);
    expect(s.context).toEqual({ count: 2, note: 'small' });
    expect(actions).toEqual([]);
    [s] = compiled.transition(s, { type: 'go' });
    expect(s.value).toEqual({ outer: 'other' });
    [s, actions] = compiled.transition(s, { type: 'add', by: 10 } as never);
    expect(s.value).toBe('done');
    // params see the context as the earlier assign left it
    expect(actions).toEqual([{ type: 'report', params: { count: 12 } }]);
    // an assigned undefined removes the key, so JSON round trips the state exactly
    [s] = compiled.transition(s, { type: 'clear' });
    expect('note' in s.context).toBe(false);
  });

  it('spawns children and delivers sends to them; an unhandled event returns the same state', () => {
    let s = compiled.initial(undefined);
    [s] = compiled.transition(s, { type: 'spawn' });
    const child = () => JSON.parse(JSON.stringify(s.children.get('c1'))) as unknown;
    expect(child()).toEqual({ value: 'a', context: { n: 5 }, children: {}, src: 'child' });
    const before = s;
    [s] = compiled.transition(s, { type: 'bump' });
    expect(child()).toEqual({ value: 'b', context: { n: 6 }, children: {}, src: 'child' });
    expect(before.children.get('c1')!.value).toBe('a'); // the earlier state is untouched
    const [same, none] = compiled.transition(s, { type: 'unknown' } as never);
    expect(same).toBe(s);
    expect(none).toEqual([]);
    // a state value restored from JSON (a new object) is found by value
    const [again] = compiled.transition({ ...s, value: JSON.parse(JSON.stringify(s.value)) }, { type: 'go' });
    expect(again.value).toEqual({ outer: 'other' });
  });

  it('knows its states, and those of its spawned machines', () => {
    expect(compiled.isState({ outer: 'inner' })).toBe(true);
    expect(compiled.isState(JSON.parse('{"outer":"other"}'))).toBe(true);
    expect(compiled.isState('done')).toBe(true);
    expect(compiled.isState('inner')).toBe(false);
    expect(compiled.isState({ outer: 'nowhere' })).toBe(false);
    expect(compiled.isState(null)).toBe(false);
    expect(compiled.isState('b', 'child')).toBe(true);
    expect(compiled.isState('done', 'child')).toBe(false);
    // what matches nothing is a shared, frozen result
    expect(Object.isFrozen(compiled.transition(compiled.initial(undefined), { type: 'nothing' } as never)[1])).toBe(true);
  });

  it('a send to an actor that does not exist fails, as in xstate', () => {
    expect(() => compiled.transition(compiled.initial(undefined), { type: 'bump' })).toThrow(/unknown actor "c1"/);
  });

  it('refuses what it does not implement, naming it', () => {
    expect(refused(() => compileMachine(createMachine({ id: 'm', initial: 'a', states: { a: { entry: assign({}) } } })))).toMatch(/entry\/exit/);
    expect(refused(() => compileMachine(createMachine({ id: 'm', initial: 'a', states: { a: { after: { 10: 'b' } }, b: {} } })))).toMatch(/after/);
    expect(refused(() => compileMachine(createMachine({ id: 'm', initial: 'a', states: { a: { always: 'b' }, b: {} } })))).toMatch(/always/);
    expect(refused(() => compileMachine(createMachine({ id: 'm', initial: 'a', states: { a: { invoke: { src: createMachine({}) } } } })))).toMatch(/invoke/);
    expect(refused(() => compileMachine(createMachine({ id: 'm', type: 'parallel', states: { a: {}, b: {} } })))).toMatch(/parallel/);
    expect(refused(() => compileMachine(createMachine({ id: 'm', initial: 'a', states: { a: { type: 'final' } } })))).toMatch(/final/);
    expect(refused(() => compileMachine(createMachine({ id: 'm', initial: 'a', states: { a: { on: { '*': 'a' } } } })))).toMatch(/wildcard/);
    expect(refused(() => compileMachine(createMachine({ id: 'm', initial: 'a', states: { a: { on: { x: { actions: raise({ type: 'y' }) } } } } })))).toMatch(/xstate.raise/);
    expect(refused(() => compileMachine(createMachine({ id: 'm', initial: 'a', states: { a: { on: { x: { actions: 'nope' } } } } })))).toMatch(/no implementation/);
    expect(refused(() => compileMachine(setup({ actors: { child } }).createMachine({ id: 'm', initial: 'a', states: { a: { on: { x: { actions: spawnChild('child', { input: { n: 1 } }) } } } } })))).toMatch(/xstate.spawnChild/);
    const effectInChild = setup({ actions: { boom: () => {} } }).createMachine({ id: 'kid', initial: 'a', states: { a: { on: { x: { actions: 'boom' } } } } });
    expect(refused(() => compileMachine(effectInChild, true))).toMatch(/spawned machine/);
  });
});
