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
