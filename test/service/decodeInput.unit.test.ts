import { describe, expect, it } from 'vitest';
import { decodeInput } from '../../src/service/decodeInput.js';

const bytes = (value: unknown): Uint8Array => new TextEncoder().encode(typeof value === 'string' ? value : JSON.stringify(value));

describe('decodeInput', () => {
  it('passes a valid input through as it is', () => {
    const body = { type: 'CancelSession', reason: 'done' };
    expect(decodeInput(bytes(body))).toEqual(body);
  });

  it('refuses a RetryDue published by a client: only the service\'s own timers hand it to the planner', () => {
    expect(decodeInput(bytes({ type: 'RetryDue', taskId: 't1', attempt: 2 }))).toEqual({
      type: 'InvalidInput',
      reason: 'input type "RetryDue" is internal to the planner',
      inputType: 'RetryDue',
    });
  });

  it('passes the input type of a rejected body on, and adds none when the body has no type', () => {
    const noOutput = decodeInput(bytes({ type: 'TaskCompleted', taskId: 't1', dispatchId: 's1.t1.1' }));
    expect(noOutput).toMatchObject({ type: 'InvalidInput', inputType: 'TaskCompleted', reason: expect.stringMatching(/^invalid TaskCompleted: output: /) });
    expect(decodeInput(bytes({ type: 'Bogus' }))).toEqual({ type: 'InvalidInput', reason: 'unknown input type "Bogus"', inputType: 'Bogus' });
    for (const body of ['{not json', '42', JSON.stringify({ text: 'no type' })]) {
      const rejected = decodeInput(bytes(body));
      expect(rejected.type, body).toBe('InvalidInput');
      expect(rejected, body).not.toHaveProperty('inputType');
    }
  });

  it('refuses a body over its size limit', () => {
    expect(decodeInput(bytes({ type: 'SubmitInput', text: 'x'.repeat(200) }), 100)).toEqual({
      type: 'InvalidInput',
      reason: expect.stringMatching(/^oversized body \(\d+ bytes > 100\)$/),
    });
  });
});
