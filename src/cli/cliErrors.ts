import { isCorruptLogError, isSessionNotFoundError, isStoreUnavailableError, isValidationError } from '../errors.js';
import { printable } from './printable.js';

/** A mistake in how the CLI was called: exit code 2, with a pointer to `jetplan help`. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** A failure the CLI reports in one line with its own exit code. */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** The one stderr line and exit code for any error a command throws. */
export function describeError(error: unknown): { line: string; code: number } {
  const { line, code } = errorLine(error);
  // Messages quote what users typed (ids, flags, paths): shown escaped, never raw to the terminal.
  return { line: printable(line), code };
}

function errorLine(error: unknown): { line: string; code: number } {
  const message = oneLine(error instanceof Error ? error.message : String(error));
  if (error instanceof UsageError) return { line: `jetplan: ${message} (see jetplan help)`, code: 2 };
  if (error instanceof CliError) return { line: `jetplan: ${message}`, code: error.exitCode };
  if (isCorruptLogError(error)) return { line: `jetplan: corrupt log: ${message}`, code: 1 };
  if (isSessionNotFoundError(error)) return { line: `jetplan: unknown session ${error.sessionId}`, code: 1 };
  if (isValidationError(error)) return { line: `jetplan: ${message}`, code: 2 };
  if (isStoreUnavailableError(error)) return { line: `jetplan: ${message}`, code: 1 };
  return { line: `jetplan: ${message}`, code: 1 };
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}
