import { z } from 'zod';
import { CorruptLogError } from '../errors.js';
import type { OutboxCommand } from '../protocol/commands.js';
import { type DomainEvent, type NewEvent, RawEnvelope } from '../protocol/events.js';
import type { ScannedFrame } from './fileLog.js';
import type { StreamIndex } from './streamIndex.js';

/**
 * What a log frame holds: a JSON array of entries, one per append or delivery mark written by one
 * group commit. An append entry carries its stream, its sequenced events and its commands, so the
 * three are durable together or not at all.
 */
/** An outbox command as the log stores it (and appends are checked against). */
export const StoredCommand = z.object({
  id: z.string().min(1),
  sessionId: z.string(),
  causationId: z.string(),
  correlationId: z.string(),
  // Commands are not upcast, so only their discriminator is checked: an old command shape must not
  // make the whole log unreadable.
  command: z.looseObject({ type: z.string() }),
});

const AppendEntry = z.object({
  t: z.literal('a'),
  s: z.string().min(1),
  e: z.array(RawEnvelope),
  c: z.array(StoredCommand),
});

const DeliveredEntry = z.object({ t: z.literal('d'), ids: z.array(z.string()) });

const FramePayload = z.array(z.discriminatedUnion('t', [AppendEntry, DeliveredEntry]));

/** Delivery marks as written to the log. */
export interface DeliveredEntry {
  t: 'd';
  ids: string[];
}

/**
 * Serialises an append entry, sequencing `events` after `fromVersion`. The events are stringified
 * one by one and spliced into the entry (the same JSON as stringifying the whole entry) because the
 * index keeps each event's text: one serialisation per append serves both the log and the reads.
 */
export function encodeAppendEntry(
  streamId: string,
  fromVersion: number,
  events: readonly NewEvent[],
  commands: readonly OutboxCommand[],
): { json: string; eventTexts: string[] } {
  const eventTexts = events.map((event, i) => JSON.stringify({ ...event, sequence: fromVersion + i + 1 }));
  const json = `{"t":"a","s":${JSON.stringify(streamId)},"e":[${eventTexts.join(',')}],"c":${JSON.stringify(commands)}}`;
  return { json, eventTexts };
}

/** Parses and validates one frame's payload; any failure is corruption (its checksum passed). */
function decodeEntries(frame: ScannedFrame, name: string): z.infer<typeof FramePayload> {
  let json: unknown;
  try {
    json = JSON.parse(frame.payload.toString('utf8'));
  } catch (err) {
    throw new CorruptLogError(`${name}: record at byte offset ${frame.offset} is not JSON`, { cause: err });
  }
  const parsed = FramePayload.safeParse(json);
  if (!parsed.success) {
    throw new CorruptLogError(
      `${name}: record at byte offset ${frame.offset} is invalid: ${parsed.error.message}`,
      { cause: parsed.error },
    );
  }
  // Validated, but the original objects are kept: the schemas strip unknown keys, and the store
  // must hand back exactly what was written (a newer envelope field is not ours to drop).
  return json as z.infer<typeof FramePayload>;
}

/**
 * Rebuilds the in-memory index from the log's frames, in log order. Events are validated as raw
 * envelopes only; upcasting to the current schema happens in a layer above the store.
 */
export function replayFrames(frames: readonly ScannedFrame[], index: StreamIndex, name: string): number {
  let appends = 0;
  for (const frame of frames) {
    for (const entry of decodeEntries(frame, name)) {
      if (entry.t === 'd') {
        index.markDelivered(entry.ids);
        continue;
      }
      const version = index.version(entry.s);
      entry.e.forEach((event, i) => {
        if (event.sequence !== version + i + 1) {
          throw new CorruptLogError(
            `${name}: record at byte offset ${frame.offset}: stream ${entry.s} event sequence ${event.sequence} does not follow ${version + i}`,
          );
        }
      });
      // The store returns what it stored: the port's type is DomainEvent, the data is a raw envelope.
      index.append(entry.s, version, entry.e as DomainEvent[], entry.c as OutboxCommand[]);
      appends++;
    }
  }
  return appends;
}

/**
 * The log's frames without the entries of `streamIds`, as payloads to frame again in order: their
 * appends (events and commands) and the delivery marks of those commands. Frames left empty are
 * dropped; every other entry is written back as it was read.
 */
export function framesWithout(frames: readonly ScannedFrame[], streamIds: ReadonlySet<string>, name: string): { payloads: string[]; entries: number } {
  const decoded = frames.map((frame) => decodeEntries(frame, name));
  const commandsOfRemoved = new Set<string>();
  for (const entries of decoded) {
    for (const entry of entries) if (entry.t === 'a' && streamIds.has(entry.s)) for (const c of entry.c) commandsOfRemoved.add(c.id);
  }
  const payloads: string[] = [];
  let removed = 0;
  for (const entries of decoded) {
    const kept: unknown[] = [];
    for (const entry of entries) {
      if (entry.t === 'a') {
        if (streamIds.has(entry.s)) removed++;
        else kept.push(entry);
        continue;
      }
      const ids = entry.ids.filter((id) => !commandsOfRemoved.has(id));
      if (ids.length < entry.ids.length) removed++;
      if (ids.length > 0) kept.push(ids.length === entry.ids.length ? entry : { ...entry, ids });
    }
    if (kept.length > 0) payloads.push(JSON.stringify(kept));
  }
  return { payloads, entries: removed };
}
