import { describe, expect, it } from 'vitest';
import { parseInput } from '../../src/protocol/parseInput.js';

describe('parseInput', () => {
  it('accepts a valid input from bytes, text or a value', () => {
    const body = { type: 'CancelSession', reason: 'done' };
    expect(parseInput(new TextEncoder().encode(JSON.stringify(body)))).toEqual({ ok: true, input: body });
    expect(parseInput(JSON.stringify(body))).toEqual({ ok: true, input: body });
    expect(parseInput(body)).toEqual({ ok: true, input: body });
  });

  it.each([
    ['{not json', /^invalid JSON: /],
    [JSON.stringify({ type: 'Nope' }), /^unknown input type "Nope"$/],
    [JSON.stringify({ text: 'x' }), /^invalid input: type: expected one of "SubmitInput", .*"NeedsClarification"$/],
    [JSON.stringify({ type: 7 }), /^invalid input: type: expected one of (?!.*RetryDue)/],
    ['[1]', /^invalid input: \(root\): /],
    [new Uint8Array([0x7b, 0xff, 0x7d]), /^invalid JSON: /],
    [JSON.stringify({ type: 'ProvideClarification', taskId: 't1' }), /^invalid ProvideClarification: answer: /],
    [JSON.stringify({ type: 'TaskCompleted', taskId: 't1', dispatchId: 'd', output: 3 }), /^invalid TaskCompleted: output: /],
  ] as Array<[string | Uint8Array, RegExp]>)('rejects %s with a clear reason', (body, reason) => {
    const parsed = parseInput(body);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.reason).toMatch(reason);
  });

  it('rejects an oversized body before parsing it', () => {
    const parsed = parseInput('x'.repeat(101), 100);
    expect(parsed).toEqual({ ok: false, reason: 'oversized body (101 bytes > 100)' });
  });

  it('names the input type of a schema violation', () => {
    const parsed = parseInput({ type: 'SubmitInput' });
    expect(parsed).toMatchObject({ ok: false, inputType: 'SubmitInput' });
  });

  it('rejects a clarification answer of whitespace only, and keeps the spaces around a real one', () => {
    expect(parseInput({ type: 'ProvideClarification', taskId: 't1', answer: ' \t ' })).toEqual({
      ok: false,
      reason: 'invalid ProvideClarification: answer: must not be blank',
      inputType: 'ProvideClarification',
    });
    expect(parseInput({ type: 'ProvideClarification', taskId: 't1', answer: ' eu-west-1 ' })).toEqual({
      ok: true,
      input: { type: 'ProvideClarification', taskId: 't1', answer: ' eu-west-1 ' },
    });
  });
});
