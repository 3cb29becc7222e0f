/**
 * The guard against running old commands of sessions that have ended. A durable consumer made
 * under a new durable prefix starts at the beginning of the stream, and with a new inbox bucket it
 * has no record of earlier reports: without this guard a new executor fleet would run every
 * ExecuteTask ever published again. A command older than `staleAfterMs` (by the time the stream
 * stored it) is checked against its session's latest event, one `last_by_subj` lookup answered
 * from the stream's per-subject index; a command of an ended session is acknowledged without
 * running it. Fresh commands are not looked up: a session rarely ends between the dispatch of a
 * command and its delivery, and if it does the planner ignores the late report.
 */
import type { JetStreamManager, JsMsg } from '@nats-io/jetstream';
import { decodeEnvelope } from '../persistence/jetstream/jetStreamReads.js';
import { subjects } from '../persistence/jetstream/streamConfig.js';

/**
 * Default age (ms) from which a command's session is looked up: the default ack wait. Commands
 * normally reach a free executor within milliseconds of their dispatch; one older than this has
 * waited in a backlog (no executor running, all busy) or is being delivered again (a redelivery, a
 * new consumer reading from the start), which is when its session may have ended meanwhile.
 */
export const DEFAULT_STALE_AFTER_MS = 30_000;

/** How a session ended. */
export type SessionEnding = 'completed' | 'failed' | 'cancelled';

const ENDING_EVENTS: Record<string, SessionEnding> = {
  SessionCompleted: 'completed',
  SessionFailed: 'failed',
  SessionCancelled: 'cancelled',
};

/**
 * The planner rejects every input to an ended session with this reason (decide.ts), so such a
 * rejection after the end, e.g. a late answer or cancel, still tells that the session ended.
 */
const ENDED_REJECTION = /^session is (completed|failed|cancelled)$/;

/** How long ago (ms) the stream stored `m`, by this process's clock. */
export function messageAgeMs(m: JsMsg, now: number = Date.now()): number {
  return now - Number(m.timestampNanos / 1_000_000n);
}

/**
 * How the session ended, from its latest event on `<prefix>.ev.<sessionId>`; undefined while it
 * runs (or has no events). Rejects when the lookup fails (the caller then runs the command).
 */
export async function sessionEnding(
  jsm: JetStreamManager,
  streamName: string,
  subjectPrefix: string,
  sessionId: string,
): Promise<SessionEnding | undefined> {
  const last = await jsm.streams.getMessage(streamName, { last_by_subj: subjects(subjectPrefix).events(sessionId) });
  if (last === null) return undefined;
  const envelope = decodeEnvelope(streamName, last.data, last.seq);
  const ending = ENDING_EVENTS[envelope.type];
  if (ending) return ending;
  if (envelope.type === 'InputRejected') {
    const reason = (envelope.data as { reason?: unknown } | null)?.reason;
    const match = typeof reason === 'string' ? ENDED_REJECTION.exec(reason) : null;
    if (match) return match[1] as SessionEnding;
  }
  return undefined;
}
