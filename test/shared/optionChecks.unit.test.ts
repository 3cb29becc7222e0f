/** The shared checks of options a JavaScript caller can get wrong: each refusal names the option and its rule. */
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/observability/logger.js';
import { checkFunctionOption, checkIntegerOption, checkLoggerOption, checkObjectWithMethods, checkPlannerDeps } from '../../src/shared/optionChecks.js';
import { thrown } from '../support/thrown.js';

describe('checkFunctionOption', () => {
  it('takes a function, or undefined (the default applies)', () => {
    expect(() => checkFunctionOption('clock', () => 1)).not.toThrow();
    expect(() => checkFunctionOption('clock', undefined)).not.toThrow();
  });

  it.each([
    ['x', 'newId must be a function, got "x"'],
    [5, 'newId must be a function, got 5'],
    [null, 'newId must be a function, got null'],
    [{}, 'newId must be a function, got an object'],
    [[], 'newId must be a function, got an array'],
  ])('refuses %j with a ValidationError', (value, message) => {
    expect(thrown(() => checkFunctionOption('newId', value))).toMatchObject({ name: 'ValidationError', message });
  });
});

describe('checkIntegerOption', () => {
  it.each([
    [1, undefined, 'a positive integer'],
    [0, undefined, 'a non-negative integer'],
    [300, undefined, 'an integer of at least 300'],
    [300, 600, 'an integer from 300 to 600'],
  ])('states the rule min %j max %j in the words the CLI uses for its flags', (min, max, rule) => {
    expect(thrown(() => checkIntegerOption('ttlMs', -1.5, min, max))).toMatchObject({ name: 'ValidationError', message: expect.stringContaining(`ttlMs must be ${rule}`) });
  });
});

describe('checkObjectWithMethods', () => {
  const timersRule = 'timers must be an object with methods set and clear';

  it('takes an object with every method (own or inherited), or undefined unless required', () => {
    class Timers {
      set() {}
      clear() {}
    }
    expect(() => checkObjectWithMethods('timers', new Timers(), ['set', 'clear'])).not.toThrow();
    expect(() => checkObjectWithMethods('timers', undefined, ['set', 'clear'])).not.toThrow();
    expect(thrown(() => checkObjectWithMethods('timers', undefined, ['set', 'clear'], { required: true }))).toMatchObject({
      name: 'ValidationError',
      message: `${timersRule}, got undefined`,
    });
  });

  it('names the methods an object lacks, and what else was given', () => {
    expect(thrown(() => checkObjectWithMethods('timers', { set: () => 1 }, ['set', 'clear']))).toMatchObject({
      name: 'ValidationError',
      message: `${timersRule}, got an object without clear`,
    });
    expect(thrown(() => checkObjectWithMethods('timers', { set: 1, clear: 'no' }, ['set', 'clear']))).toMatchObject({
      message: `${timersRule}, got an object without set and clear`,
    });
    expect(thrown(() => checkObjectWithMethods('timers', 'fake', ['set', 'clear']))).toMatchObject({ message: `${timersRule}, got "fake"` });
    expect(thrown(() => checkObjectWithMethods('timers', null, ['set', 'clear']))).toMatchObject({ message: `${timersRule}, got null` });
  });

  it('follows a dotted path into a member, and names the kind of object when given', () => {
    const rule = 'deps must be an object with methods plan and compactor.compact';
    expect(() => checkObjectWithMethods('deps', { plan: () => [], compactor: { compact: () => ({}) } }, ['plan', 'compactor.compact'])).not.toThrow();
    expect(thrown(() => checkObjectWithMethods('deps', { plan: () => [], compactor: {} }, ['plan', 'compactor.compact']))).toMatchObject({
      message: `${rule}, got an object without compactor.compact`,
    });
    expect(thrown(() => checkObjectWithMethods('deps', { plan: () => [], compactor: null }, ['plan', 'compactor.compact']))).toMatchObject({
      message: `${rule}, got an object without compactor.compact`,
    });
    expect(thrown(() => checkObjectWithMethods('nc', {}, ['isClosed'], { kind: 'a NATS connection' }))).toMatchObject({
      message: 'nc must be a NATS connection (an object with method isClosed), got an object without isClosed',
    });
  });
});

describe('checkLoggerOption', () => {
  it('takes a pino logger, or anything with the level methods (an executor never asks isLevelEnabled)', () => {
    expect(() => checkLoggerOption('executor: logger', silentLogger)).not.toThrow();
    expect(() => checkLoggerOption('executor: logger', console)).not.toThrow();
    expect(thrown(() => checkLoggerOption('executor: logger', { info: () => {} }))).toMatchObject({
      name: 'ValidationError',
      message: 'executor: logger must be a pino-like logger (an object with methods debug, info, warn and error), got an object without debug, warn and error',
    });
  });
});

describe('checkPlannerDeps', () => {
  it('takes what the runtime and the service default, and a pino logger', () => {
    expect(() => checkPlannerDeps({})).not.toThrow();
    expect(() => checkPlannerDeps({ logger: silentLogger, clock: Date.now, newId: () => 'id' })).not.toThrow();
  });

  it.each([
    [{ logger: {} }, 'logger must be a pino-like logger (an object with methods debug, info, warn, error and isLevelEnabled), got an object without debug, info, warn, error and isLevelEnabled'],
    [{ logger: console }, 'logger must be a pino-like logger (an object with methods debug, info, warn, error and isLevelEnabled), got an object without isLevelEnabled'],
    [{ clock: 1_700_000_000_000 }, 'clock must be a function, got 1700000000000'],
    [{ newId: 'x' }, 'newId must be a function, got "x"'],
    [{ decideDeps: {} }, 'decideDeps must be an object with methods plan, countTokens and compactor.compact, got an object without plan, countTokens and compactor.compact'],
  ])('refuses %o with a ValidationError naming the option and its rule', (options, message) => {
    expect(thrown(() => checkPlannerDeps(options))).toMatchObject({ name: 'ValidationError', message });
  });
});
