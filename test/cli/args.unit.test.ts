import { describe, expect, it } from 'vitest';
import { GLOBAL_FLAGS, isFlag, parseArgs, splitCommand } from '../../src/cli/args.js';
import { processIo } from '../../src/cli/io.js';

describe('argument parsing', () => {
  it('finds the command after global flags and their values', () => {
    expect(splitCommand(['--data-dir', 'demo', '--verbose', 'replay', 's1'])).toEqual({
      command: 'replay',
      rest: ['--data-dir', 'demo', '--verbose', 's1'],
    });
    expect(splitCommand(['--json'])).toEqual({ command: undefined, rest: ['--json'] });
  });

  it('takes --name=value, repeatable flags, "-" text and everything after --', () => {
    const spec = { ...GLOBAL_FLAGS, answer: 'strings' as const, budget: 'number' as const };
    const args = parseArgs('demo', ['--data-dir=/tmp/x', '- a list item', '--answer', 'a', '--answer=b', '--budget', '7', '--', '--json'], spec);
    expect(args.flags).toEqual({ 'data-dir': '/tmp/x', answer: ['a', 'b'], budget: 7 });
    expect(args.positionals).toEqual(['- a list item', '--json']);
  });

  it('takes text that starts with a dash and a word (-rf …) as an argument: only a dash and one letter is a short flag', () => {
    expect(isFlag('-h')).toBe(true);
    expect(isFlag('-rf')).toBe(false);
    expect(isFlag('-x marks the spot')).toBe(false);
    const args = parseArgs('submit', ['-rf is not a flag', '-h'], GLOBAL_FLAGS);
    expect(args.positionals).toEqual(['-rf is not a flag']);
    expect(args.flags).toEqual({ help: true });
  });

  it('refuses a flag that does not repeat given twice, and says when a number is too large', () => {
    const spec = { ...GLOBAL_FLAGS, session: 'string' as const, budget: 'number' as const };
    expect(() => parseArgs('demo', ['--data-dir', 'a', '--data-dir=b'], spec)).toThrow('--data-dir given twice');
    expect(() => parseArgs('demo', ['--budget', '1', '--budget', '2'], spec)).toThrow('--budget given twice');
    expect(() => parseArgs('demo', ['--budget', '99999999999999999999'], spec)).toThrow('--budget is too large: 99999999999999999999');
    expect(() => parseArgs('demo', ['--budget', '-1'], spec)).toThrow('--budget expects a non-negative integer, got "-1"');
  });

  it('refuses an empty value (an unset shell variable) for a string flag, but takes one where empty means something', () => {
    const spec = { ...GLOBAL_FLAGS, session: 'string' as const, answer: 'strings' as const, reason: 'text' as const };
    expect(() => parseArgs('submit', ['--session', '', 'text'], spec)).toThrow('--session needs a non-empty value');
    expect(() => parseArgs('submit', ['--session=', 'text'], spec)).toThrow('--session needs a non-empty value');
    expect(() => parseArgs('demo', ['--answer', 'a', '--answer', ''], spec)).toThrow('--answer needs a non-empty value');
    expect(parseArgs('cancel', ['s1', '--reason', ''], spec).flags).toEqual({ reason: '' });
  });

  it('takes a positive flag from 1 up, and refuses 0, negatives, fractions and words alike', () => {
    const spec = { ...GLOBAL_FLAGS, until: 'positive' as const };
    expect(parseArgs('replay', ['--until', '1'], spec).flags).toEqual({ until: 1 });
    expect(parseArgs('replay', ['--until=007'], spec).flags).toEqual({ until: 7 });
    for (const value of ['0', '-1', '1.5', 'abc', '', '+3', '1e3']) {
      expect(() => parseArgs('replay', ['--until', value], spec)).toThrow(`--until expects a positive integer, got ${JSON.stringify(value)}`);
    }
    expect(() => parseArgs('replay', ['--until', '99999999999999999999'], spec)).toThrow('--until is too large: 99999999999999999999');
  });

  it('takes a ranged flag within its bounds, and names the range for anything else', () => {
    const spec = { ...GLOBAL_FLAGS, port: { min: 1, max: 65_535 }, ttl: { min: 300 } };
    expect(parseArgs('serve', ['--port', '1', '--ttl', '300'], spec).flags).toEqual({ port: 1, ttl: 300 });
    expect(parseArgs('serve', ['--port=65535'], spec).flags).toEqual({ port: 65_535 });
    for (const value of ['0', '-1', '65536', '1.5', 'http']) {
      expect(() => parseArgs('serve', ['--port', value], spec)).toThrow(`--port expects an integer from 1 to 65535, got ${JSON.stringify(value)}`);
    }
    for (const value of ['299', '-300', 'soon']) {
      expect(() => parseArgs('serve', ['--ttl', value], spec)).toThrow(`--ttl expects an integer of at least 300, got ${JSON.stringify(value)}`);
    }
    expect(parseArgs('serve', ['--zero', '-0'], { zero: { min: 0, max: 5 } }).flags.zero).toBe(0);
    expect(Object.is(parseArgs('serve', ['--zero', '-0'], { zero: { min: 0, max: 5 } }).flags.zero, -0)).toBe(false);
  });
});

describe('processIo', () => {
  it('wires the real process and adds and removes its signal listeners', () => {
    const io = processIo();
    expect(io.env).toBe(process.env);
    expect(io.stdin).toBe(process.stdin);
    const before = process.listenerCount('SIGINT');
    const off = io.onSignal(() => {});
    expect(process.listenerCount('SIGINT')).toBe(before + 1);
    expect(process.listenerCount('SIGTERM')).toBeGreaterThan(0);
    off();
    expect(process.listenerCount('SIGINT')).toBe(before);
    io.stdout('');
    io.stderr('');
  });
});
