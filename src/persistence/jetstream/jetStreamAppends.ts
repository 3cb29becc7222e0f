/**
 * The broker side of an append: publishing one event with the server's optimistic-concurrency
 * expectation, and looking up or verifying what a session's subject already holds. The store
 * keeps the cache and counters; these helpers only talk to the server.
 */
import { PubHeaders, type JetStreamManager, type PubAck } from '@nats-io/jetstream';
import { ValidationError } from '../../errors.js';
import type { PubAckMux } from './pubAckMux.js';
import { headers as natsHeaders } from '@nats-io/transport-node';
import type { NewEvent } from '../../protocol/events.js';
import { HEADER_CAUSATION_ID, HEADER_CORRELATION_ID, HEADER_EVENT_TYPE } from './headers.js';
import { retryTransient, type RetryContext } from './jetStreamErrors.js';
import { decodeEnvelope } from './jetStreamReads.js';

/** A session's tip: its version (last event `sequence`) and that message's stream sequence. */
export interface Position {
  version: number;
  seq: number;
  /** The id of the event at `version`, when known. */
  lastId?: string;
}

/** What the append helpers need from the store that runs them. */
export interface AppendContext extends RetryContext {
  publisher: PubAckMux;
  jsm: JetStreamManager;
  streamName: string;
  /** PubAck timeout, ms. */
  timeoutMs: number;
  /** The largest message the stream takes, bytes: its max_msg_size or the server's max_payload. */
  maxMessageBytes: number;
}

/** Headers are informational (the body is the truth): keep them on one line. */
const headerValue = (value: string): string => value.replace(/[\r\n]+/g, ' ');

/** The stored body of `event` as `version`: the envelope with its position. */
export const eventBody = (event: NewEvent, version: number): string => JSON.stringify({ ...event, sequence: version });

/** Headers are counted as well as the body against the limits; this many bytes bound the fixed part. */
const HEADER_OVERHEAD =
  'NATS/1.0\r\n\r\n'.length +
  [HEADER_EVENT_TYPE, HEADER_CORRELATION_ID, HEADER_CAUSATION_ID, PubHeaders.MsgIdHdr, PubHeaders.ExpectedLastSubjectSequenceHdr]
    .reduce((n, name) => n + name.length + ': \r\n'.length, 0) +
  20; // the expected sequence's digits

/** An upper bound of an event message's size on the wire (headers and body), in bytes. */
function messageBytes(event: NewEvent, body: string, exact: boolean): number {
  const values = event.type.length + event.correlationId.length + event.causationId.length + event.id.length;
  // A UTF-16 unit is at most 3 bytes of UTF-8: count exactly only when the bound does not fit.
  if (!exact) return HEADER_OVERHEAD + 3 * (values + body.length);
  const bytes = (text: string) => Buffer.byteLength(text, 'utf8');
  return HEADER_OVERHEAD + bytes(event.type) + bytes(event.correlationId) + bytes(event.causationId) + bytes(event.id) + bytes(body);
}

/**
 * Throws ValidationError, before anything is published, when one of an append's messages is larger
 * than `limit` bytes (the stream's max_msg_size or the server's max_payload): the server would
 * refuse it, however often it is sent, after the events before it had been stored.
 */
export function assertFits(streamId: string, events: readonly NewEvent[], bodies: readonly string[], limit: number): void {
  for (let i = 0; i < events.length; i++) {
    if (messageBytes(events[i]!, bodies[i]!, false) <= limit) continue;
    const size = messageBytes(events[i]!, bodies[i]!, true);
    if (size <= limit) continue;
    throw new ValidationError(
      `session ${streamId}: event ${events[i]!.type} would be a message of ${size} bytes, over the ${limit} bytes the stream takes (max_msg_size / max_payload); nothing was appended`,
    );
  }
}

/**
 * Publishes `event` (encoded as `body`) as the next event, expecting the subject's last message to
 * be stream seq `tipSeq` (the server rejects it with 10071 otherwise). The event id is the msg id,
 * so a resend after a lost ack is deduplicated rather than stored twice.
 */
export async function publishEvent(ctx: AppendContext, subject: string, event: NewEvent, body: string, tipSeq: number): Promise<PubAck> {
  const h = natsHeaders();
  h.set(HEADER_EVENT_TYPE, headerValue(event.type));
  h.set(HEADER_CORRELATION_ID, headerValue(event.correlationId));
  h.set(HEADER_CAUSATION_ID, headerValue(event.causationId));
  return retryTransient(ctx, () =>
    ctx.publisher.publish(subject, body, {
      msgID: event.id,
      expect: { lastSubjectSequence: tipSeq },
      headers: h,
      timeout: ctx.timeoutMs,
    }),
  );
}

/** The session's tip from the server (`last_by_subj`), or undefined if it has no events. */
export async function fetchTip(ctx: AppendContext, subject: string): Promise<Position | undefined> {
  const last = await retryTransient(ctx, () => ctx.jsm.streams.getMessage(ctx.streamName, { last_by_subj: subject }));
  if (last === null) return undefined;
  const envelope = decodeEnvelope(ctx.streamName, last.data, last.seq);
  return { version: envelope.sequence, seq: last.seq, lastId: envelope.id };
}

/**
 * Whether stream seq `seq` holds event `eventId` as `version` on `subject`. A duplicate ack only
 * says the msg id was seen; this checks the original landed where this append wanted it.
 */
export async function isStoredAs(
  ctx: AppendContext,
  subject: string,
  eventId: string,
  version: number,
  seq: number,
): Promise<boolean> {
  const stored = await retryTransient(ctx, () => ctx.jsm.streams.getMessage(ctx.streamName, { seq }));
  const envelope = stored === null ? undefined : decodeEnvelope(ctx.streamName, stored.data, seq);
  return stored?.subject === subject && envelope?.id === eventId && envelope.sequence === version;
}

/**
 * How many leading `events` are already stored right after `expectedVersion` (a retry after a
 * lost ack). Only the tip's id is known without reading, so it matches when the stored tip is
 * one of `events` at the position this append would have given it.
 */
export function alreadyLanded(position: Position, expectedVersion: number, events: NewEvent[]): number {
  const landed = position.version - expectedVersion;
  if (landed < 1 || landed > events.length || position.lastId === undefined) return 0;
  return events[landed - 1]?.id === position.lastId ? landed : 0;
}
