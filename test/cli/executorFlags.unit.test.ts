/**
 * Flag checks of `jetplan executor` that need no NATS server: they fail before connecting (the
 * URL is unreachable, so reaching the connection would print a different line).
 */
import { describe, expect, it } from 'vitest';
import { run } from './fakeIo.js';

const UNREACHABLE = ['--nats', 'nats://127.0.0.1:1'];

async function usageError(argv: string[]): Promise<string> {
  const { code, io } = await run([...argv, ...UNREACHABLE]);
  expect(io.stdoutText).toBe('');
  expect(io.stderrLines).toHaveLength(1);
  expect(code).toBe(2);
  return io.stderrLines[0]!;
}

describe('jetplan executor flags', () => {
  it.each([
    // Beyond 2^31-1 ms Node would fire the timer after 1 ms.
    [['shell', '--allow', 'echo', '--timeout-ms', '2147483648'], '--timeout-ms expects an integer from 1 to 2147483647, got "2147483648"'],
    [['echo', '--ack-wait-ms', '715827883'], '--ack-wait-ms expects an integer from 100 to 715827882, got "715827883"'],
    [['echo', '--ack-wait-ms', '99999999999'], '--ack-wait-ms expects an integer from 100 to 715827882, got "99999999999"'],
    [['echo', '--inbox-ttl-ms', '315360000001'], '--inbox-ttl-ms expects an integer from 60000 to 315360000000, got "315360000001"'],
    [['shell', '--allow', 'echo', '--timeout-ms', '0'], '--timeout-ms expects an integer from 1 to 2147483647, got "0"'],
    [['echo', '--ack-wait-ms', '50'], '--ack-wait-ms expects an integer from 100 to 715827882, got "50"'],
    [['echo', '--allow-exec-capable'], '--allow-exec-capable only applies to the shell executor'],
    [['shell', '--allow', 'echo,no-such-program-xyz'], '--allow: allowed program "no-such-program-xyz" is not found on PATH'],
  ])('%j → %s', async (args, message) => {
    expect(await usageError(['executor', ...args])).toBe(`jetplan: ${message} (see jetplan help)`);
  });

  it('refuses an exec-capable program without --allow-exec-capable, and gets past the check with it', async () => {
    for (const prog of ['sed', 'awk', 'tar', 'sh']) {
      expect(await usageError(['executor', 'shell', '--allow', `echo,${prog}`])).toMatch(
        new RegExp(`^jetplan: --allow: allowed program "${prog}"( \\(\\w+\\))? can run other programs through its arguments, .* --allow-exec-capable`),
      );
    }
    // With the opt-in, the checks pass and the command goes on to connect (and fails there).
    const { code, io } = await run(['executor', 'shell', '--allow', 'sed', '--allow-exec-capable', ...UNREACHABLE]);
    expect(io.stderrLines).toEqual([expect.stringMatching(/^jetplan: cannot connect to NATS/)]);
    expect(code).toBe(1);
  });

  it('the limits fit: the largest values get past the checks', async () => {
    const { code, io } = await run(['executor', 'shell', '--allow', 'echo', '--timeout-ms', '2147483647', '--ack-wait-ms', '715827882', '--inbox-ttl-ms', '315360000000', ...UNREACHABLE]);
    expect(io.stderrLines).toEqual([expect.stringMatching(/^jetplan: cannot connect to NATS/)]);
    expect(code).toBe(1);
  });
});
