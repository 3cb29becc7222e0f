/**
 * The broker side of an append: publishing one event with the server's optimistic-concurrency
 * expectation, and looking up or verifying what a session's subject already holds. The store
 * keeps the cache and counters; these helpers only talk to the server.
 */
import type { JetStreamManager, PubAck } from '@nats-io/jetstream';
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
}

/** Headers are informational (the body is the truth): keep them on one line. */
const headerValue = (value: string): string => value.replace(/[\r\n]+/g, ' ');

/**
 * Publishes `event` as `version`, expecting the subject's last message to be stream seq `tipSeq`
 * (the server rejects it with 10071 otherwise). The event id is the msg id, so a resend after a
 * lost ack is deduplicated rather than stored twice.
 */
export async function publishEvent(
  ctx: AppendContext,
  subject: string,
  event: NewEvent,
  version: number,
  tipSeq: number,
): Promise<PubAck> {
  const body = JSON.stringify({ ...event, sequence: version });
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
