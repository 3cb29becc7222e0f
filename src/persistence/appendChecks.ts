import { ValidationError } from '../errors.js';
import { SessionId } from '../protocol/domain.js';
import { EVENT_SCHEMA_VERSION, NEW_EVENT_FIELDS, NewDomainEvent, type NewEvent } from '../protocol/events.js';
import type { AppendOptions, ReadOptions } from './eventStore.js';
import { StoredCommand } from './logEntry.js';

/**
 * Refuses a stream id that is not a session id (1 to 64 characters of [A-Za-z0-9_-]): every store
 * takes the same ids, so code written against the memory store does not break on JetStream, where
 * the id is a subject token.
 */
export function checkStreamId(streamId: string): void {
  if (typeof streamId !== 'string' || !SessionId.safeParse(streamId).success) {
    throw new ValidationError(`invalid stream id ${JSON.stringify(streamId)}: 1-64 characters of [A-Za-z0-9_-]`);
  }
}

/**
 * Refuses read bounds that are not whole numbers of at least 0 (undefined: unbounded). Stores
 * would otherwise each make their own sense of `NaN` or `1.5`: one read everything, another
 * reported a corrupt log.
 */
export function checkReadOptions(streamId: string, options: ReadOptions | undefined): void {
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null) throw new ValidationError(`stream ${streamId}: read options must be an object`);
  for (const key of ['from', 'to', 'last'] as const) {
    const value: unknown = options[key];
    if (value !== undefined && !(Number.isSafeInteger(value) && (value as number) >= 0)) {
      throw new ValidationError(`stream ${streamId}: read option ${key} must be a whole number of at least 0, not ${shown(value)}`);
    }
  }
}

/**
 * Refuses an append the read path could not give back: an event that is not a valid envelope of a
 * known type with its data, one of another session, or two events with one id (ids are how a
 * retried append is recognised). Stores call it before anything is written.
 */
export function checkNewEvents(streamId: string, events: readonly NewEvent[], options: AppendOptions): void {
  checkStreamId(streamId);
  if (typeof options !== 'object' || options === null) {
    throw new ValidationError(`stream ${streamId}: append options must be an object with an expectedVersion`);
  }
  const { expectedVersion: expected } = options;
  if (expected !== 'any' && !(Number.isSafeInteger(expected) && expected >= 0)) {
    throw new ValidationError(`stream ${streamId}: expectedVersion must be 'any' or a non-negative integer, got ${shown(expected)}`);
  }
  const commands: unknown = options.commands ?? [];
  if (!Array.isArray(events)) throw new ValidationError(`stream ${streamId}: events must be an array`);
  if (!Array.isArray(commands)) throw new ValidationError(`stream ${streamId}: commands must be an array`);
  commands.forEach((command, i) => {
    // As the file store's scan reads them back: one it refuses would make the whole log unreadable.
    const parsed = StoredCommand.safeParse(command);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new ValidationError(`stream ${streamId}: command ${i} is not a valid outbox command: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`, { cause: parsed.error });
    }
  });
  const ids = new Set<string>();
  events.forEach((event, i) => {
    // A writer writes the current version only: readers upcast older ones and cannot read newer.
    if ((event as { version?: unknown } | null)?.version !== EVENT_SCHEMA_VERSION) {
      throw new ValidationError(`stream ${streamId}: event ${i} has version ${JSON.stringify((event as { version?: unknown } | null)?.version)}; this version of jetplan writes version ${EVENT_SCHEMA_VERSION}`);
    }
    const parsed = NewDomainEvent.safeParse(event);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue && issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
      const type = typeof (event as { type?: unknown } | null)?.type === 'string' ? ` (${(event as { type: string }).type})` : '';
      throw new ValidationError(`stream ${streamId}: event ${i}${type} is not a valid event: ${where}${issue?.message ?? 'invalid'}`, { cause: parsed.error });
    }
    // zod ignores keys it does not know; stored, one would come back from some stores and not others.
    for (const key in event) {
      if (!NEW_EVENT_FIELDS.has(key)) {
        throw new ValidationError(`stream ${streamId}: event ${i} (${event.type}) has an unknown field ${JSON.stringify(key)} (put it in data, or leave it out)`);
      }
    }
    if (event.sessionId !== streamId) {
      throw new ValidationError(`stream ${streamId}: event ${i} (${event.type}) belongs to session ${JSON.stringify(event.sessionId)}`);
    }
    if (ids.has(event.id)) throw new ValidationError(`stream ${streamId}: event id ${JSON.stringify(event.id)} appears twice in one append`);
    ids.add(event.id);
  });
}

/**
 * The error for an event id the stream already holds at `version` (not as a repeat of its last
 * append): the same on every store, since no retry could clear it.
 */
export function storedIdError(streamId: string, id: string, version: number, appended = 'nothing was appended'): ValidationError {
  return new ValidationError(`stream ${streamId}: event id ${JSON.stringify(id)} is already event ${version} of this stream; event ids must be unique; ${appended}`);
}

/** A value as a message quotes it: strings quoted, numbers as numbers (NaN, not JSON's null). */
const shown = (value: unknown): string => (typeof value === 'string' ? JSON.stringify(value) : String(value));
