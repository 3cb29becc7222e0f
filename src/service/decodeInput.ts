/**
 * Validation where an input's bytes enter the service: size, JSON, schema. A body that fails
 * becomes an `InvalidInput`, which the planner records as InputRejected in the session, so a bad
 * message is visible in the log rather than dropped. Pure: no NATS types.
 */
import type { PlannerInput } from '../machines/decide.js';
import { SessionId } from '../protocol/domain.js';
import { MAX_INPUT_BYTES, parseInput } from '../protocol/parseInput.js';

/** Default limit of an input body (64 KiB). */
export const DEFAULT_MAX_INPUT_BYTES = MAX_INPUT_BYTES;

/** Whether a subject's last token is a valid session id (else nothing can be stored for it). */
export function isSessionId(value: string): boolean {
  return SessionId.safeParse(value).success;
}

/** Decodes and validates an input body as the planner's input; never throws. */
export function decodeInput(data: Uint8Array, maxBytes: number = DEFAULT_MAX_INPUT_BYTES): PlannerInput {
  const parsed = parseInput(data, maxBytes);
  // The service's own retry timers hand RetryDue to the planner directly; from a client it is
  // not part of the protocol.
  if (parsed.ok && parsed.input.type === 'RetryDue') {
    return { type: 'InvalidInput', reason: 'input type "RetryDue" is internal to the planner', inputType: 'RetryDue' };
  }
  if (parsed.ok) return parsed.input;
  return { type: 'InvalidInput', reason: parsed.reason, ...(parsed.inputType ? { inputType: parsed.inputType } : {}) };
}
