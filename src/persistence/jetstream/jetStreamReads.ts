/**
 * Reading events back from the jetplan stream: decoding stored messages into envelopes, and the
 * reads of one session, of the whole log or of every session's latest event, each through a pull
 * consumer of its own whose pulls are bounded in bytes as well as in messages.
 */
import { DeliverPolicy } from '@nats-io/jetstream';
import { CorruptLogError, StoreUnavailableError } from '../../errors.js';
import { safeParseRawEnvelope, type DomainEvent, type RawEnvelope } from '../../protocol/events.js';
import type { LatestEvent, ReadOptions } from '../eventStore.js';
import { PullRead, type Delivery, type PullReadOptions, type ReadContext } from './pullRead.js';
import { HEADER_EVENT_TYPE } from './headers.js';
import { retryTransient, type RetryContext } from './jetStreamErrors.js';

const decoder = new TextDecoder();
const seqOf = (seq: number | (() => number)): number => (typeof seq === 'function' ? seq() : seq);

export type { ReadContext } from './pullRead.js';
export { PULL_MAX_BYTES, PULL_MAX_MESSAGES, READ_IDLE_MS } from './pullRead.js';

/**
 * Parses a stored message body; anything but a valid envelope means the log is corrupt. `seq`, the
 * message's stream sequence for the error, may be given lazily.
 */
export function decodeEnvelope(streamName: string, data: Uint8Array, seq: number | (() => number)): RawEnvelope {
  let json: unknown;
  try {
    json = JSON.parse(decoder.decode(data));
  } catch (err) {
    throw new CorruptLogError(`stream ${streamName} seq ${seqOf(seq)}: not JSON`, { cause: err });
  }
  const parsed = safeParseRawEnvelope(json);
  if (!parsed.success) {
    throw new CorruptLogError(`stream ${streamName} seq ${seqOf(seq)}: not an event envelope`, {
      cause: parsed.error,
    });
  }
  return parsed.data;
}

/** What a session read needs: the reads' context and resends (for the tip lookup). */
export type SessionReadContext = ReadContext & RetryContext;

/**
 * Reads a session's events in the range of `options` to `onEvent`: first its tip, by
 * `last_by_subj` (answered from the server's per-subject index, no scan), then the range with a
 * consumer ({@link readRange}), unless the tip alone is wanted.
 */
export async function readSession(
  ctx: SessionReadContext,
  subject: string,
  options: ReadOptions,
  onEvent: (event: DomainEvent) => void,
): Promise<{ currentVersion: number; exists: boolean }> {
  const last = await retryTransient(ctx, () => ctx.jsm.streams.getMessage(ctx.streamName, { last_by_subj: subject }));
  if (last === null) return { currentVersion: 0, exists: false };
  const lastEnvelope = decodeEnvelope(ctx.streamName, last.data, last.seq);
  const currentVersion = lastEnvelope.sequence;
  const to = Math.min(currentVersion, options.to ?? currentVersion);
  const from = Math.max(1, options.from ?? 1, options.last === undefined ? 1 : to - options.last + 1);
  if (from > to) return { currentVersion, exists: true };
  if (from === currentVersion) {
    onEvent(lastEnvelope as unknown as DomainEvent); // only the tip is wanted, and we have it
  } else {
    await readRange(ctx, subject, last.seq, from, to, onEvent);
  }
  return { currentVersion, exists: true };
}

/**
 * Reads the session's events `from..to` with a consumer on its `subject` (`lastSeq`, the stream
 * seq of its event `to` or later, names the session's tip). Versions are checked to be 1..n
 * without gaps, since the read starts at 1; the read ends at event `to`. Each event of the range
 * goes to `onEvent` as it arrives, so a fold need not hold them all.
 */
export async function readRange(
  ctx: ReadContext,
  subject: string,
  lastSeq: number,
  from: number,
  to: number,
  onEvent: (event: DomainEvent) => void,
): Promise<void> {
  // Events 1..to are the subject's first `to` messages: no more are pulled.
  const read = await PullRead.open(ctx, subject, { most: to });
  let expected = 1;
  let count = 0;
  try {
    // Nothing on the subject now (removed since the tip was looked up): nothing to wait for, and
    // the read ends here, short, which the count below reports as corrupt.
    let done = read.total === 0;
    while (!done) {
      const batch = await read.take();
      if (batch.length === 0) break;
      for (const m of batch) {
        const envelope = decodeEnvelope(ctx.streamName, m.data, m.seq);
        if (envelope.sequence !== expected) {
          throw new CorruptLogError(
            `session subject ${subject}: expected event ${expected} at stream sequence ${m.seq}, found ${envelope.sequence}`,
          );
        }
        expected++;
        if (envelope.sequence >= from) {
          count++;
          onEvent(envelope as unknown as DomainEvent);
        }
        // Past the tip, or nothing more on the subject (messages removed since the tip was looked
        // up): the read ends, and a short one is corrupt rather than waited on forever.
        if (envelope.sequence >= to || m.seq >= lastSeq || m.pending === 0) {
          done = true;
          break;
        }
      }
    }
  } finally {
    read.close();
  }
  if (count !== to - from + 1) {
    throw new CorruptLogError(`session subject ${subject} (tip at stream sequence ${lastSeq}): read ${count} events, expected ${to - from + 1}`);
  }
}

/**
 * Every message on `filter` (all sessions' events) that the stream holds when the read starts, in
 * stream order: as many as the read's consumer had pending when it was created (events appended
 * meanwhile are not read). A read that cannot deliver that many never ends as if it had: it fails
 * with a StoreUnavailableError (a retry reads the log again) when the server has nothing more on
 * `filter` before that count, when a message is lost on the way, when the server refuses a pull
 * or the connection closes, and when no message comes for `readIdleMs` while the read waits.
 */
export function readAllEvents(ctx: ReadContext, filter: string): AsyncIterable<DomainEvent> {
  return readPending(ctx, filter, {}, 'messages it held', (m) => decodeEnvelope(ctx.streamName, m.data, m.seq) as unknown as DomainEvent);
}

/**
 * The last message of each subject on `filter` (`<prefix>.ev.>`: each session's latest event), in
 * one pass, in stream order: one consumer delivering `last_per_subject`, whose pending count at its
 * creation is the number of subjects, and only their headers (the type is the `Jetplan-Type`
 * header, the time the server's): small messages, pulled by count, which is what keeps 2.9.10
 * from losing one (see {@link PullReadOptions.headersOnly}). Fails as {@link readAllEvents} does;
 * and, since every subject is delivered once, a session given twice (a subject's last message
 * removed during the read, the consumer then going on with messages stored since) fails it too,
 * rather than give a session twice and another not at all. A message without the type header (not
 * written by jetplan) is a CorruptLogError.
 */
export async function* readLatestEvents(ctx: ReadContext, filter: string): AsyncIterable<LatestEvent> {
  const seen = new Set<string>();
  const at = filter.length - 1; // the session id follows `<prefix>.ev.`
  const tipOf = (m: Delivery): LatestEvent => {
    const streamId = m.msg.subject.slice(at);
    const type = m.msg.headers?.get(HEADER_EVENT_TYPE) ?? '';
    if (type === '') throw new CorruptLogError(`stream ${ctx.streamName} seq ${m.seq}: the latest event of session ${streamId} has no ${HEADER_EVENT_TYPE} header`);
    return { streamId, type, timestamp: m.storedAt };
  };
  for await (const tip of readPending(ctx, filter, { deliver: DeliverPolicy.LastPerSubject, headersOnly: true }, 'subjects it had', tipOf)) {
    if (seen.has(tip.streamId)) {
      throw new StoreUnavailableError(
        `JetStream ${ctx.streamName}: the read of the latest event on each subject of ${filter} gave session ${tip.streamId} twice: messages were removed during the read`,
      );
    }
    seen.add(tip.streamId);
    yield tip;
  }
}

/**
 * The first `total` messages of a consumer on `filter` read as `options` say (its pending count at
 * creation: the `counted` it had then), each decoded; see {@link readAllEvents} for how it fails.
 */
async function* readPending<T>(
  ctx: ReadContext,
  filter: string,
  options: PullReadOptions,
  counted: string,
  decode: (m: Delivery) => T,
): AsyncIterable<T> {
  // The stream's end before the consumer exists: every message the read counts is at or before it.
  const lastSeq = (await ctx.jsm.streams.info(ctx.streamName)).state.last_seq;
  const read = await PullRead.open(ctx, filter, options);
  const short = (count: number, why: string) =>
    new StoreUnavailableError(`JetStream ${ctx.streamName}: the read of ${filter} ended short, at ${count} of the ${read.total} ${counted} at the start: ${why}`);
  try {
    let count = 0;
    while (count < read.total) {
      const batch = await read.take();
      if (batch.length === 0) throw short(count, 'the read ended'); // take() ends only once all came
      for (const m of batch) {
        // Messages come in stream order: one stored after the read began, before all it counted
        // came, means some of those were removed meanwhile (a purge), and new ones would make up
        // the count, giving other events than the stream held.
        if (m.seq > lastSeq) throw short(count, `stream sequence ${m.seq}, stored after the read began, came first: messages were removed during the read`);
        count++;
        yield decode(m);
        if (count === read.total) return;
        // Nothing more on the filter, yet fewer than it held at the start: messages removed during
        // the read (which nats-server 2.9 does not count down), or a count the server got wrong.
        if (m.pending === 0) throw short(count, `the server has nothing on it after stream sequence ${m.seq}`);
      }
    }
  } finally {
    read.close();
  }
}
