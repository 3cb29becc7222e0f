/**
 * Reading events back from the jetplan stream: decoding stored messages into envelopes, and the
 * ordered-consumer reads of one session or of the whole log.
 */
import { DeliverPolicy, type Consumer, type JetStreamClient, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import { CorruptLogError } from '../../errors.js';
import { RawEnvelope, type DomainEvent } from '../../protocol/events.js';
import type { ReadOptions } from '../eventStore.js';
import type { ConnectionGate } from './connectionGate.js';
import { retryTransient, type RetryContext } from './jetStreamErrors.js';

const decoder = new TextDecoder();
const seqOf = (seq: number | (() => number)): number => (typeof seq === 'function' ? seq() : seq);

/** What the reads need from the store that runs them. */
export interface ReadContext {
  js: JetStreamClient;
  gate: ConnectionGate;
  streamName: string;
  /** How long to wait for a reconnect before creating a consumer, ms. */
  retryForMs: number;
}

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
  const parsed = RawEnvelope.safeParse(json);
  if (!parsed.success) {
    throw new CorruptLogError(`stream ${streamName} seq ${seqOf(seq)}: not an event envelope`, {
      cause: parsed.error,
    });
  }
  return parsed.data;
}

/** What a session read needs: the reads' context, the manager for the tip lookup, resends. */
export interface SessionReadContext extends ReadContext, RetryContext {
  jsm: JetStreamManager;
}

/**
 * Reads a session's events in the range of `options` to `onEvent`: first its tip, by
 * `last_by_subj` (answered from the server's per-subject index, no scan), then the range with an
 * ordered consumer, unless the tip alone is wanted.
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
 * Reads the session's events `from..to` with an ordered consumer on its `subject` (`lastSeq`, the
 * stream seq of its event `to` or later, names the session's tip). Versions are checked to be
 * 1..n without gaps, since the read starts at 1; the read ends at event `to`. Each event of the
 * range goes to `onEvent` as it arrives, so a fold need not hold them all.
 */
export async function readRange(
  ctx: ReadContext,
  subject: string,
  lastSeq: number,
  from: number,
  to: number,
  onEvent: (event: DomainEvent) => void,
): Promise<void> {
  await ctx.gate.ready(ctx.retryForMs);
  const consumer = await ctx.js.consumers.get(ctx.streamName, {
    filter_subjects: subject, // a string: a single filter_subject, which 2.9 understands
    deliver_policy: DeliverPolicy.All,
    inactive_threshold: 30_000,
  });
  let expected = 1;
  let count = 0;
  try {
    // Nothing on the subject now (removed since the tip was looked up): no message will come to
    // end the read, so it ends here, short, which the count below reports as corrupt.
    if ((await consumer.info(true)).num_pending > 0) {
      await consumeUntil(consumer, Math.min(Math.max(to, 64), 4_096), (m) => {
        const envelope = decodeEnvelope(ctx.streamName, m.data, () => m.seq);
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
        // up): the read ends, and a short one is corrupt rather than waited on forever. An ordered
        // consumer has already parsed m.info, so this costs nothing.
        return envelope.sequence >= to || m.seq >= lastSeq || m.info.pending === 0;
      });
    }
  } finally {
    consumer.delete().catch(() => undefined);
  }
  if (count !== to - from + 1) {
    throw new CorruptLogError(`session subject ${subject} (tip at stream sequence ${lastSeq}): read ${count} events, expected ${to - from + 1}`);
  }
}

/**
 * Runs `onMessage` on each message as it arrives until it returns true. A callback rather than an
 * async iterator: no promise per message, which a replay of thousands of events notices. Rejects
 * with what `onMessage` throws, or when the consume ends before that.
 */
async function consumeUntil(consumer: Consumer, maxMessages: number, onMessage: (m: JsMsg) => boolean): Promise<void> {
  let stopped = false;
  let finish!: () => void;
  const finished = new Promise<undefined>((resolve) => (finish = () => resolve(undefined)));
  const messages = await consumer.consume({
    max_messages: maxMessages,
    // A stream deleted mid-read ends the read (with an error) instead of waiting for it to return.
    abort_on_missing_resource: true,
    callback: (m) => {
      if (stopped) return; // messages already buffered when the read ended
      if (onMessage(m)) {
        stopped = true;
        finish();
      }
    },
  });
  try {
    // nats.js stops the consume with what the callback threw; closed() resolves with it.
    const ended = messages.closed().then((err) => err ?? new Error('the consumer closed before the read finished'));
    const failure = await Promise.race([finished, ended]);
    if (failure) throw failure;
  } finally {
    stopped = true;
    await messages.close().catch(() => undefined);
  }
}

/**
 * Every message on `filter` (all sessions' events) through one ordered consumer, up to the
 * stream's last message at the start of the read: the consumer's pending count says when to stop.
 */
export async function* readAllEvents(ctx: ReadContext, filter: string): AsyncIterable<DomainEvent> {
  await ctx.gate.ready(ctx.retryForMs);
  const consumer = await ctx.js.consumers.get(ctx.streamName, {
    filter_subjects: filter,
    deliver_policy: DeliverPolicy.All,
    inactive_threshold: 30_000,
  });
  try {
    if ((await consumer.info(true)).num_pending === 0) return;
    // A stream deleted mid-read ends the read (with an error) instead of waiting for it to return.
    const messages = await consumer.consume({ max_messages: 4_096, abort_on_missing_resource: true });
    try {
      for await (const m of messages) {
        yield decodeEnvelope(ctx.streamName, m.data, m.seq) as unknown as DomainEvent;
        if (m.info.pending === 0) break;
      }
    } finally {
      await messages.close().catch(() => undefined);
    }
  } finally {
    consumer.delete().catch(() => undefined);
  }
}
