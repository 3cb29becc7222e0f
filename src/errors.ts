/**
 * jetplan's error classes. Each sets `name`, accepts `ErrorOptions` (so a cause is kept) and has a
 * type guard that works across module copies (it checks `name`, not `instanceof`).
 */

/** An append named a version the stream has moved past (optimistic concurrency). */
export class ConcurrencyError extends Error {
  override readonly name = 'ConcurrencyError';
  constructor(
    readonly streamId: string,
    readonly expectedVersion: number,
    readonly actualVersion: number | undefined,
    options?: ErrorOptions,
  ) {
    super(
      `stream ${streamId}: expected version ${expectedVersion}, found ${actualVersion ?? 'unknown'}`,
      options,
    );
  }
}
export const isConcurrencyError = (e: unknown): e is ConcurrencyError =>
  e instanceof Error && e.name === 'ConcurrencyError';

/** Input that fails validation: bad JSON, a schema violation, unusable text. */
export class ValidationError extends Error {
  override readonly name = 'ValidationError';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}
export const isValidationError = (e: unknown): e is ValidationError =>
  e instanceof Error && e.name === 'ValidationError';

/** Stored data that cannot be read back: a bad checksum in the middle of a log, an unknown event. */
export class CorruptLogError extends Error {
  override readonly name = 'CorruptLogError';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}
export const isCorruptLogError = (e: unknown): e is CorruptLogError =>
  e instanceof Error && e.name === 'CorruptLogError';

/** A session id that has no events. */
export class SessionNotFoundError extends Error {
  override readonly name = 'SessionNotFoundError';
  constructor(
    readonly sessionId: string,
    options?: ErrorOptions,
  ) {
    super(`unknown session ${sessionId}`, options);
  }
}
export const isSessionNotFoundError = (e: unknown): e is SessionNotFoundError =>
  e instanceof Error && e.name === 'SessionNotFoundError';

/** The store or bus is closed or unreachable. */
export class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}
export const isStoreUnavailableError = (e: unknown): e is StoreUnavailableError =>
  e instanceof Error && e.name === 'StoreUnavailableError';

/** A machine definition uses a feature the compiled transition does not implement (a programming error). */
export class UnsupportedMachineError extends Error {
  override readonly name = 'UnsupportedMachineError';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}
export const isUnsupportedMachineError = (e: unknown): e is UnsupportedMachineError =>
  e instanceof Error && e.name === 'UnsupportedMachineError';

/** A shell executor allow-list it refuses to start with (a program not found, or exec-capable). */
export class ShellConfigError extends Error {
  override readonly name = 'ShellConfigError';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}
export const isShellConfigError = (e: unknown): e is ShellConfigError =>
  e instanceof Error && e.name === 'ShellConfigError';
