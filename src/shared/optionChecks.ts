import { ValidationError } from '../errors.js';

/**
 * Throws a ValidationError naming `name` and its rule unless `value` is undefined (the default
 * applies) or an integer from `min` to `max`. Options are checked before anything is opened or
 * connected: a bad limit taken silently shows up later, far from its cause (a negative input limit
 * rejects every input; a zero snapshot interval switches snapshots off).
 */
export function checkIntegerOption(name: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (value === undefined) return;
  if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max) return;
  throw new ValidationError(`${name} must be ${integerRule(min, max)}, got ${shown(value)}`);
}

/** The rule in words, as a caller would state it. */
function integerRule(min: number, max: number): string {
  if (max !== Number.MAX_SAFE_INTEGER) return `an integer from ${min} to ${max}`;
  return min === 1 ? 'a positive integer' : `an integer >= ${min}`;
}

/** The offending value, quoted when it is a string so `'100'` is told apart from `100`. */
function shown(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}
