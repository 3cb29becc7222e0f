/**
 * Reading events back from the jetplan stream: decoding stored messages into envelopes, and the
 * ordered-consumer reads of one session or of the whole log.
 */
import { DeliverPolicy, type JetStreamClient } from '@nats-io/jetstream';
import { CorruptLogError } from '../../errors.js';
import { RawEnvelope, type DomainEvent } from '../../protocol/events.js';
import type { ConnectionGate } from './connectionGate.js';

const decoder = new TextDecoder();

/** What the reads need from the store that runs them. */
export interface ReadContext {
  js: JetStreamClient;
  gate: ConnectionGate;
  streamName: string;
  /** How long to wait for a reconnect before creating a consumer, ms. */
  retryForMs: number;
}

/** Parses a stored message body; anything but a valid envelope means the log is corrupt. */
export function decodeEnvelope(streamName: string, data: Uint8Array, seq: number): RawEnvelope {
  let json: unknown;
  try {
    json = JSON.parse(decoder.decode(data));
  } catch (err) {
    throw new CorruptLogError(`stream ${streamName} seq ${seq}: not JSON`, { cause: err });
  }
  const parsed = RawEnvelope.safeParse(json);
  if (!parsed.success) {
    throw new CorruptLogError(`stream ${streamName} seq ${seq}: not an event envelope`, {
      cause: parsed.error,
    });
  }
  return parsed.data;
}

/**
 * Reads the session's events `from..to` with an ordered consumer on its `subject`, up to stream
 * seq `lastSeq`. Versions are checked to be 1..n without gaps, since the read starts at 1.
 */
export async function readRange(
  ctx: ReadContext,
  subject: string,
  lastSeq: number,
  from: number,
  to: number,
): Promise<DomainEvent[]> {
  await ctx.gate.ready(ctx.retryForMs);
  const consumer = await ctx.js.consumers.get(ctx.streamName, {
    filter_subjects: subject, // a string: a single filter_subject, which 2.9 understands
    deliver_policy: DeliverPolicy.All,
    inactive_threshold: 30_000,
  });
  const wanted = to - from + 1;
  const events: DomainEvent[] = [];
  const messages = await consumer.consume({ max_messages: Math.min(Math.max(to, 64), 4_096) });
  let expected = 1;
  try {
    for await (const m of messages) {
      const envelope = decodeEnvelope(ctx.streamName, m.data, m.seq);
      if (envelope.sequence !== expected) {
        throw new CorruptLogError(
          `session subject ${subject}: expected event ${expected} at stream sequence ${m.seq}, found ${envelope.sequence}`,
        );
      }
      expected++;
      if (envelope.sequence >= from) events.push(envelope as unknown as DomainEvent);
      if (envelope.sequence >= to || m.seq >= lastSeq) break;
    }
  } finally {
    await messages.close().catch(() => undefined);
    consumer.delete().catch(() => undefined);
  }
  if (events.length !== wanted) {
    throw new CorruptLogError(`session subject ${subject}: read ${events.length} events, expected ${wanted}`);
  }
  return events;
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
    const messages = await consumer.consume({ max_messages: 4_096 });
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
