import { SessionInput } from './inputs.js';

/** The default largest input body accepted, in bytes. */
export const MAX_INPUT_BYTES = 64 * 1024;

const KNOWN_TYPES = new Set<string>(SessionInput.options.map((o) => o.shape.type.value));
/** The types a client or executor may send, for messages. */
const CLIENT_TYPES = [...KNOWN_TYPES].filter((t) => t !== 'RetryDue').map((t) => `"${t}"`).join(', ');
// fatal: bytes that are not UTF-8 are rejected as invalid JSON rather than decoded to U+FFFD.
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** An input as it entered: valid, or the reason it is not (recorded as InputRejected). */
export type ParsedInput = { ok: true; input: SessionInput } | { ok: false; reason: string; inputType?: string };

/**
 * Decodes an input where its bytes enter (NATS message, bus message): size, JSON, type, schema.
 * The reasons are the ones docs/protocol.md lists.
 */
export function parseInput(body: Uint8Array | string | unknown, maxBytes = MAX_INPUT_BYTES): ParsedInput {
  let value = body;
  if (typeof body === 'string' || body instanceof Uint8Array) {
    const size = typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;
    if (size > maxBytes) return { ok: false, reason: `oversized body (${size} bytes > ${maxBytes})` };
    try {
      value = JSON.parse(typeof body === 'string' ? body : utf8.decode(body));
    } catch (error) {
      return { ok: false, reason: `invalid JSON: ${(error as Error).message}` };
    }
  }
  const type = typeof value === 'object' && value !== null ? (value as { type?: unknown }).type : undefined;
  if (typeof value === 'object' && value !== null && !Array.isArray(value) && typeof type !== 'string') {
    // zod would list every type of the union, RetryDue (internal to the planner) included.
    return { ok: false, reason: `invalid input: type: expected one of ${CLIENT_TYPES}` };
  }
  if (typeof type === 'string' && !KNOWN_TYPES.has(type)) {
    return { ok: false, reason: `unknown input type ${JSON.stringify(type).slice(0, 80)}`, inputType: type.slice(0, 64) };
  }
  const parsed = SessionInput.safeParse(value);
  if (parsed.success) return { ok: true, input: parsed.data };
  const issue = parsed.error.issues[0];
  const path = issue && issue.path.length > 0 ? issue.path.join('.') : '(root)';
  const what = typeof type === 'string' ? type : 'input';
  return {
    ok: false,
    reason: `invalid ${what}: ${path}: ${issue?.message ?? 'schema violation'}`,
    ...(typeof type === 'string' ? { inputType: type } : {}),
  };
}
