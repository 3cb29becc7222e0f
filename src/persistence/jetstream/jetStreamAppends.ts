/**
 * The broker side of an append: publishing one event with the server's optimistic-concurrency
 * expectation, and looking up or verifying what a session's subject already holds. The store
 * keeps the cache and counters; these helpers only talk to the server.
 */
import { PubHeaders, type JetStreamManager, type PubAck } from '@nats-io/jetstream';
import type { PubAckMux } from './pubAckMux.js';
import { headers as natsHeaders, type MsgHdrs } from '@nats-io/transport-node';
import type { ValidationError } from '../../errors.js';
import { safeParseRawEnvelope, type NewEvent, type RawEnvelope } from '../../protocol/events.js';
import { storedIdError } from '../appendChecks.js';
import { firstKnownId } from '../streamIndex.js';
import { HEADER_CAUSATION_ID, HEADER_CORRELATION_ID, HEADER_EVENT_TYPE } from './headers.js';
import { retryTransient, type RetryContext } from './jetStreamErrors.js';
import { decodeEnvelope, readRange, type SessionReadContext } from './jetStreamReads.js';

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
  /**
   * The largest message the stream takes, bytes: its max_msg_size or the server's max_payload.
   * Read again before refusing an append for it, since an operator may have raised it.
   */
  maxMessageBytes: number;
}

/** Headers are informational (the body is the truth): keep them on one line. */
const headerValue = (value: string): string => value.replace(/[\r\n]+/g, ' ');

/** The stored body of `event` as `version`: the envelope with its position. */
export const eventBody = (event: NewEvent, version: number): string => JSON.stringify({ ...event, sequence: version });

/** Bytes of an event message's headers besides their values: the frame and the five names. */
const HEADER_FRAME =
  'NATS/1.0\r\n\r\n'.length +
  [HEADER_EVENT_TYPE, HEADER_CORRELATION_ID, HEADER_CAUSATION_ID, PubHeaders.MsgIdHdr, PubHeaders.ExpectedLastSubjectSequenceHdr]
    .reduce((n, name) => n + name.length + ': \r\n'.length, 0);
/** Digits of a stream sequence at most (a safe integer). */
const MAX_SEQ_DIGITS = String(Number.MAX_SAFE_INTEGER).length;

/**
 * An event message's size as the server counts it against max_msg_size and nats.js against
 * max_payload (headers and body; not the subject), at most: header values are only ever shortened.
 * `seqDigits` are the digits of its expected last subject sequence. With `exact` false, a cheaper
 * bound (a UTF-16 unit is at most 3 bytes of UTF-8), enough when even that fits.
 */
function messageBytes(event: NewEvent, body: string, seqDigits: number, exact: boolean): number {
  const fixed = HEADER_FRAME + seqDigits;
  if (!exact) return fixed + 3 * (event.type.length + event.correlationId.length + event.causationId.length + event.id.length + body.length);
  const bytes = (text: string) => Buffer.byteLength(text, 'utf8');
  return fixed + bytes(event.type) + bytes(event.correlationId) + bytes(event.causationId) + bytes(event.id) + bytes(body);
}

/**
 * The first of an append's messages that would be larger than `limit` bytes (the stream's
 * max_msg_size or the server's max_payload), with its size; undefined if all fit. `firstSeq` is
 * the stream sequence the first event expects (later ones expect sequences not known yet).
 */
export function oversized(
  events: readonly NewEvent[],
  bodies: readonly string[],
  firstSeq: number,
  limit: number,
): { index: number; size: number } | undefined {
  for (let i = 0; i < events.length; i++) {
    const digits = i === 0 ? String(firstSeq).length : MAX_SEQ_DIGITS;
    if (messageBytes(events[i]!, bodies[i]!, digits, false) <= limit) continue;
    const size = messageBytes(events[i]!, bodies[i]!, digits, true);
    if (size > limit) return { index: i, size };
  }
  return undefined;
}

/**
 * Publishes `event` (encoded as `body`) as the next event, expecting the subject's last message to
 * be stream seq `tipSeq` (the server rejects it with 10071 otherwise). The event id is the msg id,
 * so a resend after a lost ack is deduplicated rather than stored twice.
 */
export async function publishEvent(ctx: AppendContext, subject: string, event: NewEvent, body: string, tipSeq: number): Promise<PubAck> {
  return retryTransient(ctx, () =>
    ctx.publisher.publish(subject, body, {
      msgID: event.id,
      expect: { lastSubjectSequence: tipSeq },
      headers: eventHeaders(event),
      timeout: ctx.timeoutMs,
    }),
  );
}

/** jetplan's headers of an event message (the publish adds the msg id and the expectation). */
export function eventHeaders(event: NewEvent): MsgHdrs {
  const h = natsHeaders();
  h.set(HEADER_EVENT_TYPE, headerValue(event.type));
  h.set(HEADER_CORRELATION_ID, headerValue(event.correlationId));
  h.set(HEADER_CAUSATION_ID, headerValue(event.causationId));
  return h;
}

/** The session's tip from the server (`last_by_subj`), or undefined if it has no events. */
export async function fetchTip(ctx: AppendContext, subject: string): Promise<Position | undefined> {
  const last = await retryTransient(ctx, () => ctx.jsm.streams.getMessage(ctx.streamName, { last_by_subj: subject }));
  if (last === null) return undefined;
  const envelope = decodeEnvelope(ctx.streamName, last.data, last.seq);
  return { version: envelope.sequence, seq: last.seq, lastId: envelope.id };
}

/** The subject and envelope of the message at stream sequence `seq`, if there is one. */
export async function storedAt(ctx: AppendContext, seq: number): Promise<{ subject: string; id: string; sequence: number; envelope: RawEnvelope } | undefined> {
  const stored = await retryTransient(ctx, () => ctx.jsm.streams.getMessage(ctx.streamName, { seq }));
  if (stored === null) return undefined;
  const envelope = decodeEnvelope(ctx.streamName, stored.data, seq);
  return { subject: stored.subject, id: envelope.id, sequence: envelope.sequence, envelope };
}

/** JSON with every object's keys sorted: the same value however its keys were ordered. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}

/**
 * Whether the stored envelope is `event` at `version`, content and all. An event id is its
 * input's message id and position, but its content also depends on when and where it was decided
 * (timestamps, a retry's due time, the run id in every dispatch id): a stale leader that decided
 * the same input as the new one must not take the new one's event for its own and carry on with
 * its own decision after it.
 */
export function sameEvent(stored: RawEnvelope, event: NewEvent, version: number): boolean {
  const ours = safeParseRawEnvelope(JSON.parse(eventBody(event, version)));
  return ours.success && canonical(ours.data) === canonical(stored);
}

/**
 * How many leading `events` the session's tip says are already stored right after
 * `expectedVersion` (a retry after a lost ack): the tip is one of `events` at the position this
 * append would have given it. Only the tip's id is known without reading, so the events before it
 * are still to be checked ({@link storedEvents}, {@link endsWith}).
 */
export function alreadyLanded(position: Position, expectedVersion: number, events: NewEvent[]): number {
  const landed = position.version - expectedVersion;
  if (landed < 1 || landed > events.length || position.lastId === undefined) return 0;
  return events[landed - 1]?.id === position.lastId ? landed : 0;
}

/**
 * The session's events 1..`tip.version`, in order, as stored: what a retry that landed in part is
 * checked against. The read starts at the subject's first message whatever its range, so all of
 * them cost no more than the last few, and with all the ids a refusal names the id the memory and
 * file stores name. Only a retry pays for it: a plain append never reads.
 */
export async function storedEvents(ctx: AppendContext & SessionReadContext, subject: string, tip: Position): Promise<RawEnvelope[]> {
  const events: RawEnvelope[] = [];
  await readRange(ctx, subject, tip.seq, 1, tip.version, (event) => events.push(event as unknown as RawEnvelope));
  return events;
}

/**
 * Whether the session's `stored` events (1..n) end with `events`' first `landed`, ids and content
 * ({@link sameEvent}): every landed event checked, not only the tip, as the memory and file stores
 * check a retry.
 */
export function endsWith(stored: readonly RawEnvelope[], events: readonly NewEvent[], landed: number): boolean {
  if (landed < 1 || landed > stored.length || landed > events.length) return false;
  const from = stored.length - landed;
  return events.slice(0, landed).every((event, i) => sameEvent(stored[from + i]!, event, from + i + 1));
}

/**
 * The refusal of an append whose events hold ids the session has (its `ids`) without repeating
 * its last events: the ValidationError the memory and file stores give, naming the first of them.
 */
export function heldIdError(streamId: string, ids: readonly string[], events: readonly NewEvent[]): ValidationError {
  const known = new Map<string, number>();
  // The first position of an id, as the stores' index keeps it.
  ids.forEach((id, i) => known.has(id) || known.set(id, i + 1));
  const held = firstKnownId(known, events.map((e) => e.id));
  if (held === undefined) throw new Error(`stream ${streamId}: heldIdError for an append that holds no stored id`);
  return storedIdError(streamId, held.id, held.version);
}
