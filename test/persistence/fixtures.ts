import { randomUUID } from 'node:crypto';
import { PubHeaders } from '@nats-io/jetstream';
import { eventHeaders } from '../../src/persistence/jetstream/jetStreamAppends.js';
import type { OutboxCommand } from '../../src/protocol/commands.js';
import { DomainEvent, EVENT_SCHEMA_VERSION, type EventOf, type EventType, type NewEvent } from '../../src/protocol/events.js';

type Envelope = Pick<NewEvent, 'id' | 'version' | 'timestamp' | 'causationId' | 'correlationId'>;
/** A type and its matching data, e.g. `{ type: 'SessionCompleted', data: { tasks: 2 } }`. */
export type EventPayload = { [T in EventType]: { type: T; data: EventOf<T>['data'] } }[EventType];

/** A stream id unique to this run, so contract tests can share a backend (e.g. a JetStream server). */
export const uniqueStream = (prefix = 's'): string => `${prefix}-${randomUUID().slice(0, 8)}`;

/**
 * A valid new event for `sessionId`: InputRejected with a unique reason unless `payload` says
 * otherwise. Validated against the DomainEvent schema so fixtures cannot drift from it.
 */
export function makeEvent(sessionId: string, overrides: Partial<Envelope> & { payload?: EventPayload } = {}): NewEvent {
  const { payload, ...envelope } = overrides;
  const id = envelope.id ?? randomUUID();
  const event = {
    id,
    version: EVENT_SCHEMA_VERSION,
    sessionId,
    timestamp: Date.now(),
    causationId: `cause-${id}`,
    correlationId: `corr-${sessionId}`,
    ...envelope,
    ...(payload ?? { type: 'InputRejected', data: { reason: `reason-${id}` } }),
  } as NewEvent;
  DomainEvent.parse({ ...event, sequence: 1 });
  return event;
}

/** `count` valid events for `sessionId`. */
export const makeEvents = (sessionId: string, count: number): NewEvent[] =>
  Array.from({ length: count }, () => makeEvent(sessionId));

/** A valid outbox command (a clarification request) for `sessionId`. */
export function makeCommand(sessionId: string, id = `cmd-${randomUUID().slice(0, 8)}`): OutboxCommand {
  return {
    id,
    sessionId,
    causationId: `cause-${id}`,
    correlationId: `corr-${sessionId}`,
    command: { type: 'RequestClarification', sessionId, taskId: 't1', question: `question ${id}?` },
  };
}

/** What a read should return for `events` appended after `version`. */
export const sequenced = (events: readonly NewEvent[], version = 0): DomainEvent[] =>
  events.map((event, i) => ({ ...event, sequence: version + i + 1 }) as DomainEvent);

/**
 * The bytes of an event message that the server counts against max_msg_size (and nats.js against
 * max_payload): the encoded headers as nats.js sends them (jetplan's, the msg id and the
 * expectation of stream sequence `tipSeq`) plus the body.
 */
export function wireBytes(event: NewEvent, body: string, tipSeq: number): number {
  const h = eventHeaders(event);
  h.set(PubHeaders.MsgIdHdr, event.id);
  h.set(PubHeaders.ExpectedLastSubjectSequenceHdr, String(tipSeq));
  return (h as unknown as { encode(): Uint8Array }).encode().length + Buffer.byteLength(body);
}
