import { describe, expect, it } from 'vitest';
import { needsEscaping, printable } from '../../src/cli/printable.js';

describe('printable', () => {
  it('shows DEL (0x7f) and the C1 controls (CSI, 0x9b) as \\xNN escapes', () => {
    expect(printable('a\u007fb')).toBe('a\\x7fb');
    expect(printable('a\u009b31mb')).toBe('a\\x9b31mb');
    expect(needsEscaping('\u007f')).toBe(true);
    expect(needsEscaping('\u009b')).toBe(true);
  });

  it('leaves tabs, newlines and ordinary text of any script alone', () => {
    const text = 'tab\there\nnew line, é, 你好, 👍';
    expect(printable(text)).toBe(text);
    expect(needsEscaping(text)).toBe(false);
  });
});

describe('timeline summaries', () => {
  it('escape what a client put in an id: a message id holds any character but a line break', async () => {
    const { eventSummary } = await import('../../src/cli/view.js');
    const messageId = 'm\u001b]0;PWNED\u0007\u001b[2J';
    const line = eventSummary({
      id: 'x/3', type: 'InputRepeated', version: 1, sessionId: 's', sequence: 3, timestamp: 0, causationId: messageId, correlationId: 's',
      data: { messageId, streamSequence: 54, appliedSequence: 1 },
    });
    expect(line).toBe('m\\x1b]0;PWNED\\x07\\x1b[2J again at sequence 54 (applied at 1)');
  });
});
